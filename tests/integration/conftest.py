"""One Ray session and one Serve runtime per test run, shared by every integration test.

The runtime is the real thing: the Serve ingress on 127.0.0.1 (two replicas), agent
actors, the registry. Tests talk to it over HTTP with the official a2a-sdk client.

Serve runs with direct ingress, as under `actorchestra up`'s default throughput mode:
besides the proxy at `Runtime.base_url`, each ingress replica listens on a port of its
own (where HAProxy would send requests), so a test can address one replica
(`ingress_urls`). HAProxy itself stays off: it uses fixed paths under /tmp that a
second Serve on the machine would share.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.utils.constants import TransportProtocol
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actorchestra.serve_apps.model_server import ModelServerHandle

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "actorchestra-test"
APP = "actorchestra"
INGRESS_REPLICAS = 2
# Inherited by the session's Ray processes; the drain period keeps a stopping ingress
# replica open for load balancers to notice, which no test needs.
SERVE_ENV = {
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
}


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int, avoid: set[int] | None = None) -> list[int]:
    """`n` distinct free ports (held together while chosen, so none is handed out twice)."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in (avoid or set()):
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Runtime:
    base_url: str
    namespace: str
    agents: dict[str, int]  # name -> replicas
    model_server: ModelServerHandle  # the offline model server the LLM agents call
    ingress_replicas: int = INGRESS_REPLICAS

    def card_url(self, agent: str) -> str:
        return f"{self.base_url}/a2a/{agent}/.well-known/agent-card.json"


def test_agents() -> list[dict[str, Any]]:
    return [
        {"name": "echo", "cls": "actorchestra.actors.examples:EchoAgent"},
        {"name": "text", "cls": "actorchestra.actors.examples:TextAgent", "replicas": 2},
        {"name": "lab", "cls": "tests.agents:LabAgent"},
        {"name": "sleeper", "cls": "actorchestra.actors.examples:SleepAgent", "replicas": 2},
        {
            "name": "writer",
            "cls": "actorchestra.actors.llm_agent:LLMAgent",
            # short flushes: streamed tokens reach the test without waiting
            "options": {"role": "writer", "stream_flush_ms": 10},
        },
    ]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    with pytest.MonkeyPatch.context() as env:
        for key, value in SERVE_ENV.items():
            env.setenv(key, value)
        ray.init(
            address="local",  # our own cluster, never a running `ray start` one
            namespace=NAMESPACE,
            include_dashboard=False,
            num_cpus=2,
            logging_level="WARNING",
            runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
        )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def third_party_port() -> int:
    """Where tests serve third-party A2A agents: on loopback, so the runtime must allow it.

    Card fetches refuse loopback like any private address (`protocol.netguard`); the
    session allows exactly this `127.0.0.1:<port>` with the setting an operator would
    use (ACTORCHESTRA_ALLOWED_HOSTS, `runtime.agent.tools.allowed_hosts`), and every
    other loopback port stays refused.
    """
    return free_port()


@pytest.fixture(scope="session")
def runtime(ray_session: None, third_party_port: int) -> Iterator[Runtime]:
    from ray import serve

    from actorchestra.serve_apps.builder import INGRESS, build_runtime
    from actorchestra.serve_apps.model_server.actor import ensure_offline_model_server

    # Distinct ports for Serve and the model server, chosen together: each picked on its
    # own, the model server's free port could be the one Serve was about to bind.
    port, model_port = free_ports(2, avoid={third_party_port})
    base = f"http://127.0.0.1:{port}"
    # What `actorchestra up` does when no LLM endpoint is configured; its actor starts
    # while Serve does.
    with ThreadPoolExecutor(1, thread_name_prefix="model-server") as pool:
        starting = pool.submit(ensure_offline_model_server, NAMESPACE, model_port)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        model_server = starting.result()
    agents = test_agents()
    serve.run(
        build_runtime(
            {
                "agents": agents,
                "runtime": {
                    "namespace": NAMESPACE,
                    "public_url": base,
                    "max_body_bytes": 64 * 1024,
                    "health_interval_s": 0.5,
                    "probe_timeout_s": 1.0,
                    "llm_offline": True,
                    "data_dir": tempfile.mkdtemp(prefix="actorchestra-test-"),
                    "agent": {
                        "push_allowed_hosts": ["127.0.0.1"],
                        "tools": {"allowed_hosts": [f"127.0.0.1:{third_party_port}"]},
                        "llm": {
                            "base_url": model_server.base_url,
                            # three attempts, short backoff: the fault tests stay quick
                            "max_retries": 2,
                            "backoff_initial_s": 0.05,
                            "backoff_max_s": 0.2,
                        },
                    },
                },
            },
            # the config file's override format, as `actorchestra up` applies it
            deployments=[{"name": INGRESS, "num_replicas": INGRESS_REPLICAS}],
        ),
        name=APP,
        route_prefix="/",
    )
    wait_for(lambda: _healthy(base), timeout=60, what="runtime healthy")
    yield Runtime(base, NAMESPACE, {a["name"]: a.get("replicas", 1) for a in agents}, model_server)
    serve.shutdown()
    model_server.stop()


def ingress_urls() -> dict[str, str]:
    """Each running ingress replica's own address: Serve's replica tag -> base URL.

    Read from the Serve controller's target groups, the list HAProxy routes by (a
    private Serve API: nothing public names a replica's port).
    """
    import ray
    from ray.serve.context import _get_global_client

    controller = _get_global_client()._controller
    groups = ray.get(controller.get_target_groups.remote(app_name=APP))
    return {
        # target names are the replica actors': SERVE_REPLICA::<app>#<deployment>#<tag>
        target.name.rpartition("#")[2]: f"http://127.0.0.1:{target.port}"
        for group in groups
        if group.protocol == "HTTP"
        for target in group.targets
    }


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).json().get("status") == "healthy"
    except httpx.HTTPError:
        return False


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `predicate` until true; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


async def async_wait_for(
    predicate: Any,
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not an I/O timeout
    what: str,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def make_client(
    runtime: Runtime,
    agent: str,
    http: httpx.AsyncClient,
    transport: str = TransportProtocol.JSONRPC.value,
    streaming: bool = True,
) -> Client:
    """An official a2a-sdk client for `agent`, discovered from its card."""
    card = await A2ACardResolver(http, f"{runtime.base_url}/a2a/{agent}").get_agent_card()
    config = ClientConfig(
        httpx_client=http, streaming=streaming, supported_protocol_bindings=[transport]
    )
    return ClientFactory(config).create(card)


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(scope="session")
def webhook() -> Iterator[Webhook]:
    """A real HTTP server on loopback that records every push notification it gets."""
    port = free_port()
    hook = Webhook(url=f"http://127.0.0.1:{port}/hook")

    async def receive(request: Request) -> JSONResponse:
        hook.received.append(await request.json())
        hook.headers.append(dict(request.headers))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="webhook", daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="webhook server started")
    yield hook
    server.should_exit = True
    thread.join(timeout=10)
