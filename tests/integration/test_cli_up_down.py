"""`actorchestra up` and `down`, run as a user would: `down` stops the Ray that `up`
started, every process of it, and no other Ray (this test session's keeps running).

The CLI runs in child processes with its own state dir, free ports on 127.0.0.1, Serve's
standard proxy (HAProxy's fixed paths under /tmp would be shared with any other Serve on
the machine) and a Ray temp dir of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import ray
import yaml

from actorchestra import local_ray
from actorchestra.cli import BUILDER
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

CONFIG = {
    "applications": [
        {
            "name": "actorchestra",
            "route_prefix": "/",
            "import_path": BUILDER,
            "args": {"agents": [{"name": "echo", "cls": "actorchestra.actors.examples:EchoAgent"}]},
        }
    ]
}


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """A short temp dir: Ray's socket paths under it must stay under 108 characters."""
    path = Path(tempfile.mkdtemp(prefix="aco-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorchestra.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_down_stops_the_ray_up_started_and_no_other(
    ray_session: None, tmp_path: Path, ray_tmp: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    state_dir = tmp_path / "state"
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ACTORCHESTRA_", "RAY_ADDRESS"))
    }
    env.update(
        ACTORCHESTRA_STATE_DIR=str(state_dir),
        ACTORCHESTRA_PORT=str(port),
        ACTORCHESTRA_RAY_PORT=str(free_port()),
        ACTORCHESTRA_DASHBOARD_PORT=str(free_port()),
        ACTORCHESTRA_SERVE_MODE="standard",
        ACTORCHESTRA_NAMESPACE="actorchestra-cli-test",
        # an endpoint, so `up` starts no offline model server (no agent here calls it)
        ACTORCHESTRA_LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
        RAY_TMPDIR=str(ray_tmp),
    )
    state: local_ray.RuntimeState | None = None
    try:
        up = _cli(["up", "--config", str(config)], env, tmp_path)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"actorchestra is up: http://127.0.0.1:{port}" in up.stdout

        state = local_ray.read_state(state_dir / "runtime.json")
        assert state is not None and state.started_by_cli and state.leader is not None
        assert state.leader.is_running(), "the cluster outlives the `up` that started it"
        assert state.pgid == state.leader.pid
        assert sorted(state.node) == ["gcs_server", "raylet"]
        tree = local_ray.cluster_processes(state.pgid, [state.leader.pid])
        for name, ref in state.node.items():
            assert tree.get(ref.pid) == name
        workers = [pid for pid, name in tree.items() if name.startswith("ray::")]
        assert workers, f"Serve's actors run under the raylet: {tree}"
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.json()["status"] == "healthy"

        down = _cli(["down"], env, tmp_path)

        assert down.returncode == 0, down.stdout + down.stderr
        assert f"process group {state.pgid}" in down.stdout
        assert "stopped the runtime and its Ray cluster: gcs_server (pid" in down.stdout
        still = {pid: name for pid, name in tree.items() if local_ray.is_alive(pid)}
        assert not still, f"left running: {still}"
        assert not (state_dir / "runtime.json").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)

        # this session's Ray was never touched
        assert ray.is_initialized()
        assert ray.get(ray.remote(lambda: "still here").remote(), timeout=60) == "still here"
    finally:  # a failed `up` or `down` must not leave its cluster behind
        state = state or local_ray.read_state(state_dir / "runtime.json")
        if state is not None and state.pgid is not None and local_ray.running_parts(state):
            local_ray.stop(state, timeout_s=10)
