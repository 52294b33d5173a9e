"""The planner service: takes tasks, plans them, runs them, answers for them.

A plain class; `actors.planner.actor` wraps it as the `planner` actor. Every task,
subtask and event of the runtime is recorded through its history store, and
`GET /v1/tasks` reads from there: in the runtime, the `history` actor, which owns the
DuckDB file (one writing process per file) in a process of its own; standing alone, a
DuckDB file opened here. Running tasks live in memory; finished ones are read back from
the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError

from actorchestra.actors.history.config import HistoryConfig
from actorchestra.actors.history.duckdb_store import DuckDBHistoryStore
from actorchestra.actors.history.records import TaskRecord, TaskUpdate
from actorchestra.actors.history.store import HistoryStore
from actorchestra.actors.llm.config import LLMConfig
from actorchestra.actors.planner.events import EventLog
from actorchestra.actors.planner.graph import plan_from_workflow, plan_problems
from actorchestra.actors.planner.models import (
    FINISHED,
    EventKind,
    Plan,
    SubtaskState,
    SubtaskView,
    TaskPage,
    TaskRequest,
    TaskState,
    TaskView,
    Usage,
)
from actorchestra.actors.planner.planning import llm_plan, route, synthesize
from actorchestra.actors.planner.recorded import (
    dt,
    end_interrupted,
    jsonable,
    subtask_records,
    view_from_detail,
    view_from_task_record,
)
from actorchestra.actors.planner.run import AgentInfo, Pool, RunOptions, TaskRun
from actorchestra.actors.trusted import trusted
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.endpoint import AgentEndpoint
from actorchestra.protocol.errors import ActorchestraError, InvalidInputError, TaskNotFound
from actorchestra.protocol.netguard import NetGuard
from actorchestra.protocol.remote import card_client, card_guard
from actorchestra.protocol.remote_endpoint import RemoteAgentEndpoint

logger = logging.getLogger(__name__)

ORCHESTRATOR = "orchestrator"
_UNLIMITED = 256  # capacity of an agent replica without a concurrency limit
_SHIP_FINAL_S = 0.1  # the longest the records wait for readers to send the final event
_REMOTE_CONNECT_S = 5.0  # connecting to a third-party agent; reading waits for the subtask
REFRESH_AFTER_S = 0.05  # a pool refresh a submission asks for waits this long (its dispatch)


class PlannerOptions(BaseModel):
    data_dir: str = ".actorchestra"
    llm: LLMConfig | None = Field(default=None, description="planning and synthesis model")
    subtask_timeout_s: float = 300.0
    max_attempts: int = 3
    registry_refresh_s: float = 1.0
    finished_in_memory: int = 1000
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="private or loopback hosts third-party agents may be reached at "
        "(ACTORCHESTRA_ALLOWED_HOSTS, as for their card fetches)",
    )


Registry = Callable[[], Awaitable[list[dict[str, Any]]]]
EndpointFactory = Callable[[str, int], Awaitable[AgentEndpoint]]


def history_path(data_dir: str) -> Path:
    return Path(data_dir) / "history.duckdb"


class Planner:
    def __init__(
        self,
        options: PlannerOptions,
        registry: Registry,
        endpoints: EndpointFactory,
        store: HistoryStore | None = None,
        record_every_s: float = 0.0,
        remote_http: httpx.AsyncClient | None = None,
    ) -> None:
        """`store`: where history goes (default: a DuckDB file in `data_dir`, in this
        process); `record_every_s`: how long events gather before they are recorded
        (a store in another process is worth fewer, larger calls); `remote_http`: the
        client for third-party agents (default: one guarded by `allowed_hosts`, made on
        first use: their URLs came from callers of `POST /v1/agents`)."""
        self.options = options
        self._registry = registry
        self._endpoints = endpoints
        self._remote_http = remote_http
        self._remote_guard: NetGuard | None = None  # the guard of a client made here
        self._deployed_at = 0.0  # of the newest deploy whose options it took
        if store is None:
            Path(options.data_dir).mkdir(parents=True, exist_ok=True)
            store = DuckDBHistoryStore(HistoryConfig(path=str(history_path(options.data_dir))))
        self.store = store
        self.events = EventLog(self.store, record_every_s)
        self.pool = Pool()
        self._pool_at = 0.0
        self._pool_lock = asyncio.Lock()
        self._refresh_due: asyncio.TimerHandle | None = None
        self._llm: Any = None
        self._runs: dict[str, _Active] = {}
        self._finished: OrderedDict[str, TaskView] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._started = False
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        if self._started:
            return
        async with self._start_lock:  # the first calls may come together: one start
            if self._started:
                return
            await self.store.start()
            self._llm = _llm_client(self.options.llm)
            await end_interrupted(self.store)
            self._started = True

    async def reconfigure(self, options: PlannerOptions, deployed_at: float | None = None) -> None:
        """Take a deploy's options: the planner actor outlives deploys (idempotent).

        Each deploy's ingress hands them over again every few seconds (a planner that
        Ray restarted starts with the first deploy's); those of a deploy older than the
        newest seen (`deployed_at`) are ignored, as an ingress replica of the previous
        deploy can still be running for a moment.

        Tasks from now on take the new subtask timeout and attempts (running ones keep
        theirs), the planning model and the pool refresh follow, and so do the calls to
        third-party agents: the next request is checked against the new allow-list and
        waits the new timeout (on the client the planner made; an injected `remote_http`
        stays as given). The history stays in the data dir the planner started with
        (its store, the `history` actor, outlives a deploy too). A pool already known
        is read again from the registry when a new deploy hands them over: it may have
        changed the agents.
        """
        if deployed_at is not None:
            if deployed_at < self._deployed_at:
                return
            new_deploy = deployed_at > self._deployed_at
            self._deployed_at = deployed_at
            if new_deploy and self.pool.agents:
                await self.refresh_pool(force=True)
        if options.data_dir != self.options.data_dir:
            logger.warning(
                "the planner keeps its history in %s; data_dir %s takes effect when the "
                "runtime is started anew",
                self.options.data_dir,
                options.data_dir,
            )
            options = options.model_copy(update={"data_dir": self.options.data_dir})
        if options == self.options:
            return
        previous, self.options = self.options, options
        if self._remote_guard is not None and self._remote_http is not None:
            # in place: the endpoints in the pool hold this client
            self._remote_guard.set_allowed(options.allowed_hosts)
            self._remote_http.timeout = _remote_timeout(options)
        if self._started and options.llm != previous.llm:
            # A task planning now keeps the client it has; openai closes it once unused.
            self._llm = _llm_client(options.llm)

    # -- the agents ---------------------------------------------------------------

    def _refresh_behind(self) -> None:
        """Refresh a stale pool in the background (one refresh at a time), a moment after
        the submission that found it stale: the registry's call and answer cost the
        planner a millisecond or two of CPU, which that task's first dispatch, right
        behind the submission, should not wait for."""
        stale = time.monotonic() - self._pool_at >= self.options.registry_refresh_s
        if stale and not self._pool_lock.locked() and self._refresh_due is None:
            self._refresh_due = asyncio.get_running_loop().call_later(
                REFRESH_AFTER_S, self._refresh_now
            )

    def _refresh_now(self) -> None:
        self._refresh_due = None
        self._spawn(self.refresh_pool())

    async def refresh_pool(self, force: bool = False) -> None:
        async with self._pool_lock:
            if not force and time.monotonic() - self._pool_at < self.options.registry_refresh_s:
                return
            rows = await self._registry()
            self.pool.cpus = await self._cpus()
            listed = {row["name"] for row in rows}
            for name, info in list(self.pool.agents.items()):
                # An unregistered third party gets no new subtask, nor a local agent a
                # deploy retired. Other local agents stay: a registry that restarted
                # lists them again only once it rediscovers them.
                if name in listed:
                    continue
                if isinstance(info.endpoint, RemoteAgentEndpoint) or await self._retired(name):
                    del self.pool.agents[name]
            for row in rows:
                if row["name"] == ORCHESTRATOR:
                    continue  # it hands tasks to this planner: never a step
                name = row["name"]
                remote = row.get("kind") == "remote"
                replicas = len(row.get("replicas", [])) or 1
                capacity = (row.get("concurrency") or _UNLIMITED) * replicas
                info = self.pool.agents.get(name)
                if info is None or _moved(info.endpoint, row):
                    # A third party gets one plain message per subtask: it knows no batches.
                    endpoint = (
                        self._remote_endpoint(row)
                        if remote
                        else await self._endpoints(name, replicas)
                    )
                    info = AgentInfo(name, set(), capacity, endpoint, replicas, batches=not remote)
                    self.pool.agents[name] = info
                elif not remote and replicas != info.replicas:
                    # A deploy changed its replica count; subtasks out keep their load.
                    info.endpoint = await self._endpoints(name, replicas)
                info.skills = {s["id"] for s in row.get("skills", [])}
                info.capacity = capacity
                info.replicas = replicas
                info.concurrency = row.get("concurrency") or None
                info.healthy = row.get("health") in ("healthy", "degraded", "unknown")
            self._pool_at = time.monotonic()

    async def _retired(self, name: str) -> bool:
        """Whether a local agent the registry no longer lists is gone for good (a deploy
        retired it); the Ray planner asks Ray."""
        return False

    async def _cpus(self) -> int:
        """CPUs to run the agents' work on: this machine's (the Ray planner: the cluster's)."""
        return os.cpu_count() or 1

    def _remote_endpoint(self, row: dict[str, Any]) -> RemoteAgentEndpoint:
        """A third-party agent, reached over HTTP through the guarded client."""
        if self._remote_http is None:
            self._remote_guard = card_guard(self.options.allowed_hosts)
            self._remote_http = card_client(self._remote_guard, _remote_timeout(self.options))
        return RemoteAgentEndpoint(row["name"], _remote_url(row), self._remote_http)

    def _skill_tables(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        skill_agents: dict[str, list[str]] = {}
        for agent in self.pool.agents.values():
            for skill in agent.skills:
                skill_agents.setdefault(skill, []).append(agent.name)
        return skill_agents, {a.name: sorted(a.skills) for a in self.pool.agents.values()}

    # -- the task API -------------------------------------------------------------

    async def submit(self, body: dict[str, Any]) -> str:
        """Accept a task; a bad request or an invalid workflow is refused here (422)."""
        await self.start()
        try:
            request = TaskRequest.model_validate(body)
        except ValidationError as e:
            raise InvalidInputError(_validation_message(e)) from None
        # A known pool is refreshed behind the task (a registry call costs milliseconds
        # every submission would wait for); a plan that names an agent or skill the
        # pool lacks waits for a fresh one before it is refused.
        fresh = not self.pool.agents
        if fresh:
            await self.refresh_pool()
        else:
            self._refresh_behind()
        plan = None
        if request.workflow is not None:
            plan = plan_from_workflow(request.workflow, request.input)
            problems = plan_problems(plan, *self._skill_tables())
            if problems and not fresh:
                await self.refresh_pool(force=True)
                problems = plan_problems(plan, *self._skill_tables())
            if problems:
                raise InvalidInputError("invalid workflow: " + "; ".join(problems))
        task_id = str(uuid.uuid4())
        now = time.time()
        active = _Active(task_id, request, plan, now)
        self._runs[task_id] = active
        self.events.open(task_id)
        # The task's row is written by its first state change (`_set_state`), a loop turn
        # from now, with the plan when the request carried one: one write, not two.
        task = asyncio.get_running_loop().create_task(self._drive(active), name=f"task-{task_id}")
        active.driver = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task_id

    async def _drive(self, active: _Active) -> None:
        request = active.request
        call = CallInfo(user=request.user_id or "", authenticated=bool(request.user_id))
        try:
            if active.plan is None:
                self._set_state(active, TaskState.PLANNING)
                active.plan = await self._plan(active)
            plan_json = active.plan.model_dump(mode="json")  # once: event and record
            self.events.emit(
                active.task_id,
                EventKind.PLANNED,
                {
                    "source": active.plan.source,
                    "routed": active.plan.routed,
                    "subtasks": plan_json["subtasks"],
                },
            )
            run = TaskRun(
                active.task_id,
                active.plan,
                self.pool,
                self.events,
                RunOptions(
                    max_parallel=request.max_parallel or 100_000,
                    subtask_timeout_s=request.subtask_timeout_s or self.options.subtask_timeout_s,
                    max_attempts=request.max_attempts or self.options.max_attempts,
                ),
                call,
            )
            active.run = run
            run.start()
            # After the sweep: the row (with a thousand-step plan, 1.1 ms of CPU to pack
            # for the store) is written behind the messages the sweep has just queued.
            self._set_state(active, TaskState.RUNNING, plan=plan_json, write_soon=True)
            await run.done
            if active.state == TaskState.CANCELED:
                return
            failed = run.failed_required()
            if failed:
                reason = "; ".join(f"subtask {s.spec.id!r} failed: {s.error}" for s in failed)
                await self._finish(active, TaskState.FAILED, error=reason)
                return
            await self._finish(active, TaskState.COMPLETED, result=await self._result(active))
        except asyncio.CancelledError:
            if active.state not in FINISHED:
                await self._finish(active, TaskState.CANCELED, error="canceled")
            raise
        except ActorchestraError as e:
            await self._finish(active, TaskState.FAILED, error=e.message)
        except Exception as e:  # the task fails with the reason; the planner goes on
            logger.exception("task %s failed", active.task_id)
            await self._finish(active, TaskState.FAILED, error=f"{type(e).__name__}: {e}")

    async def _plan(self, active: _Active) -> Plan:
        await self.refresh_pool()  # planning from the request: the agents as they are now
        skill_agents, agent_skills = self._skill_tables()
        skills = []
        for agent in self.pool.agents.values():
            skills += [{"id": s, "name": s} for s in agent.skills]
        routed = route(active.request.input, skills)
        if routed is not None:
            return routed
        if self._llm is None:
            raise InvalidInputError(
                "no LLM is configured to plan this task; send a `workflow`, or configure "
                "ACTORCHESTRA_LLM_BASE_URL"
            )
        plan, usage = await llm_plan(
            self._llm, active.request.input, skills, skill_agents, agent_skills
        )
        active.add_usage(usage)
        return plan

    async def _result(self, active: _Active) -> Any:
        assert active.run is not None and active.plan is not None
        done = [
            (s.spec.id, s.output)
            for s in active.run.subs.values()
            if s.state == SubtaskState.COMPLETED
        ]
        for sub in active.run.subs.values():
            active.add_usage(sub.usage)
        if len(done) == 1 or active.plan.routed:
            return done[0][1] if done else None
        if active.request.synthesize is False:
            return {sid: out for sid, out in done}
        text, usage = await synthesize(self._llm, active.request.input, done)
        active.add_usage(usage)
        if "synthesis" in usage:
            active.notes.append(str(usage["synthesis"]))
        return text

    def _set_state(
        self,
        active: _Active,
        state: TaskState,
        plan: dict[str, Any] | None = None,
        write_soon: bool = False,
    ) -> None:
        """Move the task on, and queue the write of its row (not waited for: a DuckDB
        write costs milliseconds, which the task need not pay). Writes reach the store's
        one writer thread in order, ahead of anything later about this task.

        `write_soon`: the write starts a loop turn later, behind what this turn queued
        (a sweep's send tasks and the channel flushes they queue in turn)."""
        active.state, active.updated_at = state, time.time()
        if not active.recorded:
            write = self.store.upsert_tasks([self._record(active, plan=plan)])
        else:
            write = self.store.update_task(
                # The planner's own values (the plan is its model_dump): not revalidated,
                # which took 3 ms of the loop for a thousand-subtask plan.
                TaskUpdate.model_construct(
                    task_id=active.task_id,
                    state=state.value,
                    **({"plan": plan} if plan is not None else {}),
                ),
                returning=False,
            )
        if write_soon:
            asyncio.get_running_loop().call_soon(self._spawn, write)
        else:
            self._spawn(write)

    def _record(self, active: _Active, **values: Any) -> TaskRecord:
        """The task's first row: what the request said, its state now, and `values`."""
        active.recorded = True
        request = active.request
        return trusted(  # the request was checked on submission; `values` are ours
            TaskRecord,
            task_id=active.task_id,
            user_id=request.user_id or "",
            state=active.state.value,
            session_id=request.session_id,
            input=request.input,
            created_at=dt(active.created_at),
            updated_at=dt(active.updated_at),
            **values,
        )

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._background.discard)  # type: ignore[arg-type]
        task.add_done_callback(_log_failure)

    async def _finish(
        self, active: _Active, state: TaskState, result: Any = None, error: str | None = None
    ) -> None:
        if active.finished_at is not None:  # it is already ending: one final event only
            await active.settled.wait()
            return
        now = time.time()
        active.state, active.result, active.error = state, result, error
        active.updated_at = active.finished_at = now
        self.events.emit(
            active.task_id,
            EventKind.FINAL,
            {
                "state": state.value,
                "result": result,
                "error": error,
                "usage": active.usage.model_dump(),
            },
        )
        # Readers send the final event before the records are built (see EventLog.shipped).
        await self.events.shipped(active.task_id, _SHIP_FINAL_S)
        view = self._view(active)
        try:
            await self._record_end(active, view)
            await self.events.drain()
        finally:  # in memory as finished, however the records went
            self._runs.pop(active.task_id, None)
            self._finished[active.task_id] = view
            while len(self._finished) > self.options.finished_in_memory:
                self._finished.popitem(last=False)
            active.settled.set()

    async def _record_end(self, active: _Active, view: TaskView) -> None:
        """The ended task's subtasks and final row, in the store."""
        await self.store.upsert_subtasks(subtask_records(active.task_id, view.subtasks))
        final = {
            "result": jsonable(active.result),
            "error": active.error,
            "prompt_tokens": active.usage.prompt_tokens,
            "completion_tokens": active.usage.completion_tokens,
            "cost_usd": active.usage.cost_usd,
            "finished_at": dt(active.finished_at),
        }
        if active.recorded:
            await self.store.update_task(
                TaskUpdate(task_id=active.task_id, state=active.state.value, **final),
                returning=False,
            )
        else:  # it ended before its first state change (canceled at once, say)
            plan = active.plan.model_dump(mode="json") if active.plan else None
            await self.store.upsert_tasks([self._record(active, plan=plan, **final)])

    def _view(self, active: _Active) -> TaskView:
        subtasks = (
            [s.view() for s in active.run.subs.values()]
            if active.run is not None
            else [
                SubtaskView(
                    id=s.id,
                    skill=s.skill,
                    agent=s.agent,
                    state=SubtaskState.WAITING,
                    input=s.input,
                    depends_on=s.depends_on,
                )
                for s in (active.plan.subtasks if active.plan else [])
            ]
        )
        return TaskView(
            task_id=active.task_id,
            state=active.state,
            input=active.request.input,
            user_id=active.request.user_id,
            session_id=active.request.session_id,
            plan=active.plan,
            subtasks=subtasks,
            result=active.result,
            error=active.error,
            usage=active.usage,
            created_at=active.created_at,
            updated_at=active.updated_at,
            finished_at=active.finished_at,
        )

    async def get(self, task_id: str) -> dict[str, Any]:
        active = self._runs.get(task_id)
        if active is not None:
            return self._view(active).model_dump(mode="json")
        view = self._finished.get(task_id)
        if view is not None:
            return view.model_dump(mode="json")
        await self.start()
        detail = await self.store.get_task_detail(task_id)
        if detail is None:
            raise TaskNotFound(f"no task {task_id!r}")
        return view_from_detail(detail).model_dump(mode="json")

    async def list(
        self,
        state: str | None = None,
        user_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        await self.start()
        if state is not None and state not in {s.value for s in TaskState}:
            raise InvalidInputError(
                f"unknown state {state!r}; one of: {', '.join(s.value for s in TaskState)}"
            )
        try:
            page = await self.store.list_tasks(
                state=state,
                user_id=user_id,
                since=dt(since),
                until=dt(until),
                limit=limit,
                cursor=cursor,
            )
        except ActorchestraError:
            raise
        except ValueError as e:
            raise InvalidInputError(f"bad list parameters: {e}") from None
        views = []
        for record in page.items:
            active = self._runs.get(record.task_id)
            views.append(self._view(active) if active else view_from_task_record(record))
        return TaskPage(tasks=views, next_cursor=page.next_cursor).model_dump(mode="json")

    async def cancel(self, task_id: str) -> dict[str, Any]:
        active = self._runs.get(task_id)
        if active is None or active.state in FINISHED:  # ended (its records may be going)
            current = await self.get(task_id)  # 404 for an unknown task
            raise InvalidInputError(
                f"task {task_id!r} is already {current['state']}; only running tasks cancel"
            )
        active.state = TaskState.CANCELED  # before any await: the driver must not finish it
        if active.run is not None:
            await active.run.cancel()
        if active.driver is not None and active.run is None:
            active.driver.cancel()
        await self._finish(active, TaskState.CANCELED, error="canceled by request")
        return self._finished[task_id].model_dump(mode="json")

    async def delete(self, task_id: str) -> None:
        active = self._runs.get(task_id)
        if active is not None:
            if active.state in FINISHED:
                await active.settled.wait()  # its records go in before it goes
            else:
                await self.cancel(task_id)
        await self.start()
        self._finished.pop(task_id, None)
        if not await self.store.delete_task(task_id):
            raise TaskNotFound(f"no task {task_id!r}")

    async def stream_event_batches(
        self, task_id: str, after_seq: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Events in batches (a replay page, or what is queued at once): one Ray item each."""
        if task_id not in self._runs and task_id not in self._finished:
            await self.get(task_id)  # 404 for an unknown task (a store read, not a view)
        finished = task_id not in self._runs
        async for batch in self.events.read(task_id, after_seq, finished):
            yield batch

    async def stream_events(
        self, task_id: str, after_seq: int = 0
    ) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.stream_event_batches(task_id, after_seq):
            for event in batch:
                yield event


class _Active:
    def __init__(self, task_id: str, request: TaskRequest, plan: Plan | None, now: float) -> None:
        self.task_id, self.request, self.plan = task_id, request, plan
        self.state = TaskState.PENDING
        self.run: TaskRun | None = None
        self.driver: asyncio.Task[None] | None = None
        self.result: Any = None
        self.error: str | None = None
        self.usage = Usage()
        self.notes: list[str] = []
        self.created_at = self.updated_at = now
        self.finished_at: float | None = None
        self.recorded = False  # its row has been queued for the store
        self.settled = asyncio.Event()  # ended, and its records written (or failed)

    def add_usage(self, usage: dict[str, Any]) -> None:
        if not usage:  # most subtasks: no LLM call (and a pydantic field write is ~1 us)
            return
        self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.usage.completion_tokens += int(usage.get("completion_tokens") or 0)
        self.usage.cost_usd += float(usage.get("cost_usd") or usage.get("cost") or 0.0)


def _llm_client(config: LLMConfig | None) -> Any:
    """The planning and synthesis model's client; None without a model."""
    if config is None:
        return None
    from actorchestra.actors.llm.client import LLMClient

    return LLMClient(config)


def _remote_timeout(options: PlannerOptions) -> httpx.Timeout:
    """A third-party agent's connect time, and the subtask's time for its answer."""
    return httpx.Timeout(options.subtask_timeout_s, connect=_REMOTE_CONNECT_S)


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "invalid task: " + "; ".join(parts)


def _moved(endpoint: AgentEndpoint, row: dict[str, Any]) -> bool:
    """The registry row names the agent somewhere else than `endpoint` reaches it: it
    was registered again (third party <-> local, or another card URL)."""
    if row.get("kind") != "remote":
        return isinstance(endpoint, RemoteAgentEndpoint)
    return not isinstance(endpoint, RemoteAgentEndpoint) or endpoint.card_url != _remote_url(row)


def _remote_url(row: dict[str, Any]) -> str:
    """Where a third party's card is read: its card URL, else its endpoint."""
    return str(row.get("card_url") or row["endpoint"])


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("planner background write failed: %r", task.exception())
