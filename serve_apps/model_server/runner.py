"""Run the offline model server on a free loopback port, in a thread or a subprocess.

Tests, benchmarks and the CLI need a real HTTP server they can start in well under a
second and stop deterministically. `start_model_server` runs uvicorn in a daemon thread
of this process (fast, shares nothing but the port); `start_model_server_process` runs
`python -m actorchestra.serve_apps.model_server` (isolated from this process's GIL,
which matters for benchmarks). Both return a `ModelServerHandle`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from actorchestra.serve_apps.model_server.config import FaultSpec, ModelServerConfig

logger = logging.getLogger(__name__)

READY_PREFIX = "actorchestra model server listening on "


@dataclass
class ModelServerHandle:
    """A running offline model server: where it is, how to steer it, how to stop it.

    `base_url` ends in `/v1`, ready for `AsyncOpenAI(base_url=...)`. The admin helpers
    are blocking calls over loopback HTTP, meant for test setup and scripts.
    """

    root_url: str
    api_key: str | None
    _stop: Callable[[], None] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop the server (idempotent); hung requests are released first."""
        if not self._stopped:
            self._stopped = True
            self._stop()

    def _admin(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = httpx.request(
            method, f"{self.root_url}{path}", json=body, headers=headers, timeout=10.0
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def add_fault(self, fault: FaultSpec | None = None, **fields: Any) -> None:
        """Queue a fault, given as a `FaultSpec` or its fields (`status=429, count=1, ...`)."""
        spec = fault or FaultSpec(**fields)
        self._admin("POST", "/admin/faults", spec.model_dump(exclude_none=True))

    def clear_faults(self) -> None:
        """Drop queued faults and release hung requests."""
        self._admin("DELETE", "/admin/faults")

    def set_latency(self, latency_s: float = 0.0, token_latency_s: float = 0.0) -> None:
        """Change the added latency; call with no arguments to go back to none."""
        self._admin(
            "PUT", "/admin/latency", {"latency_s": latency_s, "token_latency_s": token_latency_s}
        )

    def stats(self) -> dict[str, Any]:
        """Requests per path and faults served, to see how many attempts a client made."""
        return self._admin("GET", "/admin/stats")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound before the server starts, so its port is known up front."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def start_model_server(
    config: ModelServerConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout_s: float = 10.0,
) -> ModelServerHandle:
    """Serve in a background thread of this process; port 0 picks a free port."""
    import uvicorn  # deferred: importing the package must not pull in the server stack

    from actorchestra.serve_apps.model_server.app import create_app

    config = config or ModelServerConfig()
    app = create_app(config)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
            access_log=False,
        )
    )
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"model-server-{bound_port}",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"offline model server did not start on {host}:{bound_port}")
        time.sleep(0.01)

    def stop() -> None:
        app.state.faults.stopping = True
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        if thread.is_alive():
            logger.warning("offline model server thread on port %s did not stop", bound_port)

    logger.info("offline model server on http://%s:%s (thread)", host, bound_port)
    return ModelServerHandle(f"http://{host}:{bound_port}", config.api_key, stop)


def start_model_server_process(
    config: ModelServerConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout_s: float = 30.0,
) -> ModelServerHandle:
    """Serve in a child process; stop() terminates that process (by its handle) and waits."""
    config = config or ModelServerConfig()
    command = [
        sys.executable,
        "-m",
        "actorchestra.serve_apps.model_server",
        "--host",
        host,
        "--port",
        str(port),
        "--config-json",
        config.model_dump_json(),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    assert proc.stdout is not None
    ready: list[str] = []
    reader = threading.Thread(
        target=lambda: ready.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(startup_timeout_s)
    line = ready[0].strip() if ready else ""
    if not line.startswith(READY_PREFIX):
        _terminate(proc)
        raise RuntimeError(f"offline model server process did not start: {line or 'no output'}")
    root_url = line[len(READY_PREFIX) :]

    def stop() -> None:
        _terminate(proc)

    logger.info("offline model server on %s (pid %s)", root_url, proc.pid)
    return ModelServerHandle(root_url, config.api_key, stop)


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()


def config_from_json(raw: str) -> ModelServerConfig:
    """Parse `--config-json` (a `ModelServerConfig` as JSON)."""
    return ModelServerConfig.model_validate(json.loads(raw))
