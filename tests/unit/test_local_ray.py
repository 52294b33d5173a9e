"""The Ray that `up` starts and `down` stops: the state file, stale and reused PIDs,
stopping one process tree and nothing else.

Unit tests never start Ray: a fake `ray start --block` stands in. It prints Ray's ready
line and keeps children named like a node's (`gcs_server`, `raylet`: copies of `sleep`)
in its process group, and one in a session of its own, as Ray's workers are.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actorchestra import cli, local_ray
from actorchestra.local_ray import LocalRayError, ProcessRef, RuntimeState

FAKE_RAY_START = """
import subprocess, sys, time
bin_dir = sys.argv[1]
subprocess.Popen([f"{bin_dir}/gcs_server", "300"])
subprocess.Popen([f"{bin_dir}/raylet", "300"])
subprocess.Popen([f"{bin_dir}/ray-worker", "300"], start_new_session=True)
time.sleep(0.5)
print("Ray runtime started.", flush=True)
time.sleep(300)
"""


@pytest.fixture(autouse=True)
def _state_dir(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A clean environment (conftest) whose state directory is this test's."""
    monkeypatch.setenv("ACTORCHESTRA_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def fake_ray(tmp_path: Path) -> list[str]:
    """The command line of a fake `ray start --block`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gcs_server", "raylet", "ray-worker"):
        shutil.copy(shutil.which("sleep") or "/bin/sleep", bin_dir / name)
    return [sys.executable, "-c", FAKE_RAY_START, str(bin_dir)]


@pytest.fixture
def started(fake_ray: list[str], tmp_path: Path) -> Iterator[RuntimeState]:
    state = local_ray.start(
        fake_ray, os.environ, tmp_path / "state" / "ray.log", "127.0.0.1:6390", timeout_s=30
    )
    yield state
    # whatever a failing test left behind
    if state.pgid is not None and local_ray.running_parts(state):
        local_ray.stop(state, timeout_s=5)


def _state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "runtime.json"


def test_start_records_the_leader_its_group_and_the_node(
    started: RuntimeState, tmp_path: Path
) -> None:
    assert started.started_by_cli and started.ray_address == "127.0.0.1:6390"
    assert started.leader is not None and started.leader.is_running()
    assert started.pgid == started.leader.pid, "the leader leads a session of its own"
    assert sorted(started.node) == ["gcs_server", "raylet"]
    assert all(ref.is_running() for ref in started.node.values())
    assert started.log == str(tmp_path / "state" / "ray.log")

    local_ray.write_state(_state_path(tmp_path), started)
    assert local_ray.read_state(_state_path(tmp_path)) == started


def test_stop_ends_the_group_and_the_processes_under_it(started: RuntimeState) -> None:
    tree = local_ray.cluster_processes(started.pgid or 0, [started.leader.pid])  # type: ignore[union-attr]
    # The fake `ray start` leader is this interpreter: python, python3, python3.11...
    names = sorted("python" if n.startswith("python") else n for n in tree.values())
    assert names == ["gcs_server", "python", "ray-worker", "raylet"]

    report = local_ray.stop(started, timeout_s=10)

    assert report.stopped == tree
    assert not report.left and not report.forced
    assert not any(local_ray.is_alive(pid) for pid in tree), "the worker's own session too"
    assert local_ray.running_parts(started) == []
    assert "gcs_server (pid" in report.summary(started.node)
    assert "2 other processes are gone" in report.summary(started.node)


def test_start_reports_the_log_when_ray_start_fails(tmp_path: Path) -> None:
    failing = [sys.executable, "-c", "import sys; print('port 6390 is taken'); sys.exit(3)"]
    with pytest.raises(LocalRayError, match=r"status 3(.|\n)*port 6390 is taken"):
        local_ray.start(failing, os.environ, tmp_path / "ray.log", "127.0.0.1:6390", 10)


def test_down_stops_exactly_the_cluster_up_started(
    started: RuntimeState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_ray.write_state(_state_path(tmp_path), started)
    tree = local_ray.cluster_processes(started.pgid or 0, [started.leader.pid])  # type: ignore[union-attr]
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert cli.main(["down"]) == 0
        assert bystander.poll() is None, "another process survives"
    finally:
        bystander.kill()
        bystander.wait()
    out = capsys.readouterr().out
    assert f"process group {started.pgid}" in out
    assert "stopped the runtime and its Ray cluster: gcs_server (pid" in out
    assert not any(local_ray.is_alive(pid) for pid in tree)
    assert not _state_path(tmp_path).exists()


def test_down_with_a_stale_state_file_says_so_and_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    state = RuntimeState(
        ray_address="127.0.0.1:6390",
        started_by_cli=True,
        leader=ProcessRef(pid=gone.pid, started="1"),
        pgid=gone.pid,
    )
    local_ray.write_state(_state_path(tmp_path), state)

    assert cli.main(["down"]) == 0  # and no Ray: unit tests refuse ray.init

    out = capsys.readouterr().out
    assert f"(pid {gone.pid}) is no longer running; removing the stale state file" in out
    assert not _state_path(tmp_path).exists()


def test_a_reused_pid_is_never_signalled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state names a PID that now belongs to another process (its start time differs)."""
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        state = RuntimeState(
            ray_address="127.0.0.1:6390",
            started_by_cli=True,
            leader=ProcessRef(pid=other.pid, started="not-its-start-time"),
            pgid=other.pid,
        )
        local_ray.write_state(_state_path(tmp_path), state)
        assert local_ray.running_parts(state) == []

        assert cli.main(["down"]) == 0

        assert other.poll() is None, "the process that reuses the PID is left alone"
        assert "is no longer running" in capsys.readouterr().out
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()


def test_state_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "runtime.json"
    assert local_ray.read_state(path) is None
    path.write_text("{not json")
    with pytest.raises(LocalRayError, match="cannot be read"):
        local_ray.read_state(path)
    # written by an `up` before PIDs were kept: read, but names nothing to signal
    path.write_text('{"ray_address": "127.0.0.1:6380", "started_by_cli": true}')
    old = local_ray.read_state(path)
    assert old is not None and old.started_by_cli and old.leader is None
    with pytest.raises(LocalRayError, match="no process group"):
        local_ray.stop(old)


def test_a_process_is_known_by_pid_and_start_time() -> None:
    me = ProcessRef.of(os.getpid())
    assert me.started is not None and me.is_running()
    assert not ProcessRef(pid=os.getpid(), started="0-elsewhere").is_running()


@pytest.mark.parametrize("command", ["up", "down"])
def test_help_still_works(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: actorchestra {command}" in capsys.readouterr().out
