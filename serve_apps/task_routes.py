"""The task API: `POST /v1/tasks` and friends, live events over SSE and WebSocket.

Events carry their per-task `seq` as the SSE id: a client that reconnects with
`Last-Event-ID: <seq>` (or `?after=<seq>`) gets every event after it, then the live
ones; the WebSocket takes the same `after` query parameter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from actorchestra.actors.planner.actor import PlannerHandle
from actorchestra.protocol.errors import ActorchestraError, InvalidInputError, error_body

logger = logging.getLogger(__name__)


def add_task_routes(app: FastAPI, planner: PlannerHandle) -> None:
    @app.post("/v1/tasks", status_code=202, tags=["tasks"])
    async def submit(request: Request) -> JSONResponse:
        """Submit a task; answers 202 with its id at once (422 for an invalid workflow)."""
        try:
            body = await request.json()
        except ValueError:
            raise InvalidInputError("the body must be JSON: a task object") from None
        if not isinstance(body, dict):
            raise InvalidInputError("the body must be a JSON object with at least `input`")
        task_id = await planner.submit(body)
        return JSONResponse(
            {"task_id": task_id, "events": f"/v1/tasks/{task_id}/events"},
            status_code=202,
            headers={"Location": f"/v1/tasks/{task_id}"},
        )

    @app.get("/v1/tasks", tags=["tasks"])
    async def list_tasks(
        state: str | None = Query(None, description="pending, planning, running, completed, ..."),
        user_id: str | None = None,
        since: float | None = Query(None, description="created at or after (unix seconds)"),
        until: float | None = Query(None, description="created before (unix seconds)"),
        limit: int = Query(50, ge=1, le=500),
        cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    ) -> dict[str, Any]:
        return await planner.list(
            state=state, user_id=user_id, since=since, until=until, limit=limit, cursor=cursor
        )

    @app.get("/v1/tasks/{task_id}", tags=["tasks"])
    async def get_task(task_id: str) -> dict[str, Any]:
        return await planner.get(task_id)

    @app.post("/v1/tasks/{task_id}/cancel", tags=["tasks"])
    async def cancel_task(task_id: str) -> dict[str, Any]:
        return await planner.cancel(task_id)

    @app.delete("/v1/tasks/{task_id}", status_code=204, tags=["tasks"])
    async def delete_task(task_id: str) -> Response:
        await planner.delete(task_id)
        return Response(status_code=204)

    @app.get("/v1/tasks/{task_id}/events", tags=["tasks"])
    async def task_events(
        task_id: str,
        after: int | None = Query(None, ge=0, description="resume after this event id"),
        last_event_id: str | None = Header(None),
    ) -> EventSourceResponse:
        """Server-Sent Events; reconnect with Last-Event-ID to resume without loss."""
        start = _after(after, last_event_id)
        stream = planner.event_batches(task_id, start)
        first = await anext(stream, None)  # errors (404) surface before the stream opens

        async def frames() -> AsyncIterator[bytes]:
            # One write per batch of events, not one per event: a fast task's thousands
            # of events cost the ingress a few writes.
            if first is None:
                return
            yield _frames(first)
            async for batch in stream:
                yield _frames(batch)

        return EventSourceResponse(frames(), ping=15)

    @app.websocket("/v1/tasks/{task_id}/ws")
    async def task_ws(websocket: WebSocket, task_id: str, after: int = 0) -> None:
        await websocket.accept()
        try:
            async for event in planner.events(task_id, after):
                await websocket.send_json(event)
            await websocket.close(code=1000)
        except WebSocketDisconnect:
            return
        except ActorchestraError as e:
            await websocket.send_json(error_body(e))
            await websocket.close(code=4404 if e.http_status == 404 else 4400)


def _after(after: int | None, last_event_id: str | None) -> int:
    if after is not None:
        return after
    if last_event_id:
        try:
            return max(0, int(last_event_id))
        except ValueError:
            raise InvalidInputError(
                f"Last-Event-ID {last_event_id!r} is not an event id (a number)"
            ) from None
    return 0


def _frames(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        ServerSentEvent(id=str(e["seq"]), event=e["kind"], data=json.dumps(e)).encode()
        for e in events
    )
