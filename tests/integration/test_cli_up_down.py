"""`actorchestra up` and `down`, run as a user would: `up` prints URLs that open (the
config's route prefix included), `down` stops the Ray that `up` started, every process
of it, and no other Ray (this test session's keeps running).

The CLI runs in child processes with its own state dir, free ports on 127.0.0.1, Serve's
standard proxy (HAProxy's fixed paths under /tmp would be shared with any other Serve on
the machine) and a Ray temp dir of its own.
"""

from __future__ import annotations

import os
import re
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
            "route_prefix": "/rt",
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


def _printed(stdout: str, label: str) -> str:
    """The URL `up` printed on the line of `label`."""
    found = re.search(rf"^  {label} +(\S+)", stdout, re.MULTILINE)
    assert found, f"`up` printed no {label!r} line:\n{stdout}"
    return found.group(1)


def test_up_prints_urls_that_open_and_down_stops_the_ray_up_started(
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
        base = f"http://127.0.0.1:{port}/rt"  # where Serve serves the app
        assert f"actorchestra is up: {base}\n" in up.stdout
        health_url, card_url = _printed(up.stdout, "health"), _printed(up.stdout, "agent echo")
        assert health_url == f"{base}/health"
        assert httpx.get(health_url, timeout=10).json()["status"] == "healthy"
        card = httpx.get(card_url, timeout=10).json()
        # the card the printed URL opens names the agent under the same prefix
        assert {i["url"] for i in card["supportedInterfaces"]} == {f"{base}/a2a/echo"}

        # the other commands find the runtime under its prefix, with no address given
        status = _cli(["status"], env, tmp_path)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"runtime  {base}  healthy" in status.stdout
        agents = _cli(["agents"], env, tmp_path)
        assert re.search(r"^echo +local +healthy", agents.stdout, re.MULTILINE), agents.stdout

        state = local_ray.read_state(state_dir / "runtime.json")
        assert state is not None and state.started_by_cli and state.leader is not None
        assert state.ingress_url == base
        assert state.leader.is_running(), "the cluster outlives the `up` that started it"
        assert state.pgid == state.leader.pid
        assert sorted(state.node) == ["gcs_server", "raylet"]
        tree = local_ray.cluster_processes(state.pgid, [state.leader.pid])
        for name, ref in state.node.items():
            assert tree.get(ref.pid) == name
        workers = [pid for pid, name in tree.items() if name.startswith("ray::")]
        assert workers, f"Serve's actors run under the raylet: {tree}"

        down = _cli(["down"], env, tmp_path)

        assert down.returncode == 0, down.stdout + down.stderr
        assert f"process group {state.pgid}" in down.stdout
        assert "stopped the runtime and its Ray cluster: gcs_server (pid" in down.stdout
        still = {pid: name for pid, name in tree.items() if local_ray.is_alive(pid)}
        assert not still, f"left running: {still}"
        assert not (state_dir / "runtime.json").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(health_url, timeout=5)

        # this session's Ray was never touched
        assert ray.is_initialized()
        assert ray.get(ray.remote(lambda: "still here").remote(), timeout=60) == "still here"
    finally:  # a failed `up` or `down` must not leave its cluster behind
        state = state or local_ray.read_state(state_dir / "runtime.json")
        if state is not None and state.pgid is not None and local_ray.running_parts(state):
            local_ray.stop(state, timeout_s=10)
