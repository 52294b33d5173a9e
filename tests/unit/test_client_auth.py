"""The Python client and the CLI against a runtime with auth: the token, and the refusals.

The runtime is the task API as the ingress mounts it (auth middleware, runtime errors)
in front of a real `Planner` in this process. The client is called through ASGI; the
CLI is run as a user runs it (`cli.main`, in a thread of its own since it starts its
own event loop) against the app served by uvicorn on a loopback socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from actorchestra import cli
from actorchestra.actors.planner.service import Planner
from actorchestra.actors.spec import AgentSpec
from actorchestra.client import Client, ClientError
from actorchestra.serve_apps.identity import AuthTokens
from actorchestra.serve_apps.task_routes import add_task_routes
from tests.unit.planner_helpers import InProcessPlanner, make_planner
from tests.unit.runtime_app import runtime_app, runtime_client, served

pytestmark = pytest.mark.usefixtures("clean_env")

ANA_TOKEN = "ana-token-0123456789abcdef"
WRONG_TOKEN = "wrong-token-0123456789abcdef"
ECHO = AgentSpec(name="echo", cls="actorchestra.actors.examples:EchoAgent")
WORKFLOW = {"kind": "parallel", "steps": [{"agent": "echo", "input": "hello"}]}


@pytest.fixture
async def planner(tmp_path: Path) -> AsyncIterator[Planner]:
    planner = make_planner(tmp_path, {"echo": ECHO})
    try:
        yield planner
    finally:
        await planner.store.close()


@pytest.fixture
def app(planner: Planner) -> FastAPI:
    auth = AuthTokens({"ana": SecretStr(ANA_TOKEN)})
    app = runtime_app(auth)
    add_task_routes(app, InProcessPlanner(planner), auth)
    return app


# -- the client -------------------------------------------------------------------------------


async def test_the_client_sends_its_token(app: FastAPI, planner: Planner) -> None:
    async with runtime_client(app) as http:
        client = Client("http://runtime", http=http, token=ANA_TOKEN)
        task = await client.run("say hello", workflow=WORKFLOW, timeout_s=30)
        assert task["state"] == "completed" and task["user_id"] == "ana"
        assert [t["task_id"] for t in (await client.list())["tasks"]] == [task["task_id"]]
        assert "Authorization" not in http.headers  # the caller's client is left as it was
        assert ANA_TOKEN not in repr(client.__dict__)  # kept as a secret


async def test_the_client_reads_actorchestra_token(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_TOKEN", ANA_TOKEN)
    async with runtime_client(app) as http:
        task = await Client("http://runtime", http=http).run("hi", workflow=WORKFLOW, timeout_s=30)
        assert task["user_id"] == "ana"
        # An explicit "" sends none, whatever the environment says.
        with pytest.raises(ClientError) as refused:
            await Client("http://runtime", http=http, token="").submit("hi", workflow=WORKFLOW)
    assert refused.value.status == 401
    assert "ACTORCHESTRA_AUTH_TOKENS" in refused.value.message


# -- the CLI ------------------------------------------------------------------------------------


async def actorchestra(base: str, *argv: str) -> int:
    """`actorchestra <argv> --port <the served port>`, as a user runs it."""
    port = str(urlsplit(base).port)
    return await asyncio.to_thread(cli.main, [*argv, "--port", port])


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `cli.main` sets for Ray when unset, set here so the test leaves it as it was."""
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")


@pytest.fixture
def workflow_file(tmp_path: Path) -> str:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(WORKFLOW))
    return str(path)


@pytest.mark.usefixtures("cli_env")
async def test_cli_run_without_a_token_says_what_to_set(
    app: FastAPI, workflow_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with served(app) as base:
        code = await actorchestra(base, "run", "say hello", "--workflow", workflow_file)
    out = capsys.readouterr().out
    assert code == 2
    assert "refused (401)" in out
    assert (
        f"the runtime at {base} requires a bearer token: set ACTORCHESTRA_TOKEN (or pass "
        "--token) to a token from its ACTORCHESTRA_AUTH_TOKENS"
    ) in out
    assert "Traceback" not in out


@pytest.mark.usefixtures("cli_env")
async def test_cli_run_with_a_token_from_the_option_or_the_environment(
    app: FastAPI,
    workflow_file: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["run", "say hello", "--workflow", workflow_file, "--timeout", "30"]
    async with served(app) as base:
        assert await actorchestra(base, *argv, "--token", ANA_TOKEN) == 0
        assert "task completed" in capsys.readouterr().out
        monkeypatch.setenv("ACTORCHESTRA_TOKEN", ANA_TOKEN)
        assert await actorchestra(base, *argv) == 0
        out = capsys.readouterr().out
        assert "task completed" in out and ANA_TOKEN not in out

        # With a token, the user is the token's: naming another is refused, with the way out.
        assert await actorchestra(base, *argv, "--user", "bob") == 2
        out = capsys.readouterr().out
        assert "refused (403)" in out and "leave --user out" in out

        # --token beats the environment; a wrong one is named as such, never shown.
        assert await actorchestra(base, *argv, "--token", WRONG_TOKEN) == 2
        out = capsys.readouterr().out
        assert f"the runtime at {base} does not accept the token given" in out
        assert WRONG_TOKEN not in out


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("command", [["status"], ["agents"], ["agents", "--json"]])
async def test_cli_status_and_agents_send_the_token(
    app: FastAPI, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong token is refused by the runtime (so it was sent): a message, not a traceback."""
    monkeypatch.setenv("ACTORCHESTRA_TOKEN", WRONG_TOKEN)
    async with served(app) as base:
        with pytest.raises(SystemExit) as refused:
            await actorchestra(base, *command)
    message = str(refused.value.code)
    assert message.startswith("refused (401): the bearer token is not one this runtime accepts")
    assert f"the runtime at {base} does not accept the token given" in message
    assert WRONG_TOKEN not in message


def test_cli_help_documents_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "agents", "status"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--token TOKEN" in out and "ACTORCHESTRA_TOKEN" in out, command
