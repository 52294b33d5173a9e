"""`actorchestra run "..."`: submit a task and watch the team work it out, live."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from pydantic import SecretStr

from actorchestra.client import Client, ClientError


class ProgressPrinter:
    """One line per subtask event; tokens stream inline under their subtask."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.t0 = time.monotonic()
        self._streaming: str | None = None

    def _line(self, text: str) -> None:
        if self._streaming is not None:
            self.out.write("\n")
            self._streaming = None
        self.out.write(f"[{time.monotonic() - self.t0:6.2f}s] {text}\n")
        self.out.flush()

    def __call__(self, event: dict[str, Any]) -> None:
        kind, data = event["kind"], event["data"]
        if kind == "planned":
            self._line(f"planned ({data['source']}): {len(data['subtasks'])} subtasks")
            for s in data["subtasks"]:
                deps = f" after {', '.join(s['depends_on'])}" if s["depends_on"] else ""
                self._line(
                    f"  {s['id']}: {s.get('skill') or s.get('agent')}{deps}: {s['input'][:70]}"
                )
        elif kind == "subtask_started":
            attempt = f" (attempt {data['attempt']})" if data.get("attempt", 1) > 1 else ""
            self._line(f"{data['subtask']} started on {data['agent']}{attempt}")
        elif kind == "progress":
            self._line(f"{data['subtask']} ... {data['text']}")
        elif kind == "token":
            if self._streaming != data["subtask"]:
                self._line(f"{data['subtask']} streaming:")
                self._streaming = data["subtask"]
            self.out.write(data["text"])
            self.out.flush()
        elif kind == "subtask_completed":
            self._line(f"{data['subtask']} completed: {_short(data.get('output'))}")
        elif kind == "subtask_failed":
            self._line(f"{data['subtask']} failed: {data.get('error')}")
        elif kind == "final":
            self._line(f"task {data['state']}")


def _short(value: Any, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def refusal_hint(
    base_url: str, status: int, token_sent: bool, user_named: bool = False
) -> str | None:
    """What to set when the runtime did not know the caller (401), or refused a user the
    request named beside its token (403); None otherwise."""
    if status == 403 and token_sent and user_named:
        return "with a token the user is the token's: leave --user out, or use that user's"
    if status != 401:
        return None
    if not token_sent:
        return (
            f"the runtime at {base_url} requires a bearer token: set ACTORCHESTRA_TOKEN "
            "(or pass --token) to a token from its ACTORCHESTRA_AUTH_TOKENS"
        )
    return (
        f"the runtime at {base_url} does not accept the token given (--token or "
        "ACTORCHESTRA_TOKEN): use one from its ACTORCHESTRA_AUTH_TOKENS"
    )


async def run_task(
    base_url: str,
    text: str,
    body: dict[str, Any],
    out: TextIO | None = None,
    token: str | SecretStr | None = None,
) -> int:
    """Submit, print progress live, then the result and its cost; exit code 0 on success.

    `out` defaults to the `sys.stdout` of the call, not of the import (redirections
    apply); `token` as `Client` takes it: None reads ACTORCHESTRA_TOKEN.
    """
    out = out or sys.stdout
    printer = ProgressPrinter(out)
    async with Client(base_url, token=token) as client:
        try:
            task = await client.run(text, on_event=printer, **body)
        except ClientError as e:
            out.write(f"refused ({e.status}): {e.message}\n")
            hint = refusal_hint(base_url, e.status, client.has_token, "user_id" in body)
            if hint is not None:
                out.write(f"{hint}\n")
            return 2
    usage = task["usage"]
    out.write("\n")
    if task["state"] == "completed":
        result = task["result"]
        out.write(result if isinstance(result, str) else json.dumps(result, indent=2))
        out.write("\n")
    else:
        out.write(f"{task['state']}: {task['error']}\n")
    out.write(
        f"\ntask {task['task_id']}  {task['state']}  "
        f"tokens {usage['prompt_tokens']}+{usage['completion_tokens']}  "
        f"cost ${usage['cost_usd']:.6f}\n"
    )
    return 0 if task["state"] == "completed" else 1
