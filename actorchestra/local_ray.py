"""The local Ray cluster `actorchestra up` starts, and how `down` stops that one alone.

`ray stop` stops every Ray on the machine: another user's, a test session's. So `up` runs
`ray start --head --block` as a detached child in a session of its own and records its
PID, process group and start time in the state file (`runtime.json`); `down` signals that
process group and waits until the cluster's processes are gone. `ray start --block` tears
its node down when signalled. Ray's workers sit in process groups of their own, so `down`
signals the processes found under the cluster's process tree as well, as `ray stop` would.

A PID in an old state file may belong to another process by now: the recorded start time
tells them apart, and nothing is signalled that does not match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from actorchestra.protocol.errors import ActorchestraError

# `ray start` prints this once its GCS, raylet and dashboard are up.
READY_LINE = b"Ray runtime started"
# The node's own processes, recorded so that `down` can check they are gone.
NODE_PROCESSES = ("gcs_server", "raylet")


class LocalRayError(ActorchestraError):
    """The local Ray cluster could not be started, stopped or read about as asked."""


class ProcessRef(BaseModel):
    """A process, by PID and start time (a PID alone may have been reused)."""

    pid: int
    started: str | None = None

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        return cls(pid=pid, started=start_time(pid))

    def is_running(self) -> bool:
        return is_alive(self.pid) and (self.started is None or start_time(self.pid) == self.started)


class RuntimeState(BaseModel):
    """The state file: where the runtime's Ray is, and whether `up` started it."""

    ray_address: str
    started_by_cli: bool = False
    leader: ProcessRef | None = Field(
        default=None, description="the `ray start --block` process; it leads its own session"
    )
    pgid: int | None = None
    log: str | None = None
    node: dict[str, ProcessRef] = Field(
        default_factory=dict, description="gcs_server and raylet of the node `up` started"
    )
    ingress_url: str | None = Field(
        default=None,
        description="where `up` last served the runtime, its route prefix included: "
        "`status`, `agents` and `run` call it unless told another address",
    )


def read_state(path: Path) -> RuntimeState | None:
    """The state file's contents; None without one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return RuntimeState.model_validate_json(text)
    except ValidationError as e:
        raise LocalRayError(f"the state file {path} cannot be read: {e}") from None


def write_state(path: Path, state: RuntimeState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(state.model_dump_json(indent=2))


# -- processes ----------------------------------------------------------------------------


def _reap(pid: int) -> None:
    """Collect `pid` if it is an exited child of ours (`up` and `down` in one process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return _status(pid) not in (None, "Z")


def _status(pid: int) -> str | None:
    """The process state letter (`R`, `S`, `Z`, ...); None if it is gone."""
    if sys.platform.startswith("linux"):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return None
    return _ps(["-o", "stat=", "-p", str(pid)]).strip()[:1] or None


def start_time(pid: int) -> str | None:
    """When `pid` started, as an opaque token; None if it is gone."""
    if sys.platform.startswith("linux"):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return fields[19]  # starttime, in clock ticks since boot
    return _ps(["-o", "lstart=", "-p", str(pid)]).strip() or None


def _ps(args: list[str]) -> str:
    done = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    return done.stdout


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    name: str


def processes() -> list[Proc]:
    """Every running process (zombies left out)."""
    found: list[Proc] = []
    for line in _ps(["-A", "-o", "pid=,ppid=,pgid=,stat=,comm="]).splitlines():
        parts = line.split(None, 4)
        if len(parts) < 4 or parts[3].startswith("Z"):
            continue
        # Linux gives the name (15 characters at most), macOS the executable's path.
        name = parts[4].strip().rsplit("/", 1)[-1] if len(parts) == 5 else ""
        found.append(Proc(int(parts[0]), int(parts[1]), int(parts[2]), name))
    return found


def cluster_processes(pgid: int | None, roots: Iterable[int] = ()) -> dict[int, str]:
    """The processes of the process group `pgid`, of `roots`, and everything under them."""
    table = processes()
    children: dict[int, list[Proc]] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p)
    found = {p.pid: p.name for p in table if pgid is not None and p.pgid == pgid}
    by_pid = {p.pid: p for p in table}
    found.update({pid: by_pid[pid].name for pid in roots if pid in by_pid})
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in found:
                found[child.pid] = child.name
                todo.append(child.pid)
    return found


# -- start --------------------------------------------------------------------------------


def start(
    command: list[str], env: Mapping[str, str], log: Path, address: str, timeout_s: float
) -> RuntimeState:
    """Run `ray start --head --block ...` detached and wait until its node is up.

    The child leads a session of its own, so `up` may exit and a terminal's Ctrl-C does
    not reach the cluster; its output goes to `log`.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    leader = ProcessRef.of(child.pid)
    pgid = os.getpgid(child.pid)
    deadline = time.monotonic() + timeout_s
    while READY_LINE not in log.read_bytes():
        if child.poll() is not None:
            raise LocalRayError(f"`ray start` exited with status {child.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            stop_processes(pgid, [child.pid], timeout_s=10)
            raise LocalRayError(
                f"Ray did not start within {timeout_s:.0f}s (see {log}):\n{_tail(log)}"
            )
        time.sleep(0.2)
    members = cluster_processes(pgid, [child.pid])
    node = {
        name: ProcessRef.of(pid) for pid, name in sorted(members.items()) if name in NODE_PROCESSES
    }
    return RuntimeState(
        ray_address=address,
        started_by_cli=True,
        leader=leader,
        pgid=pgid,
        log=str(log),
        node=node,
    )


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- stop ---------------------------------------------------------------------------------


@dataclass
class StopReport:
    """What `stop` found before signalling, and what (if anything) outlived it."""

    stopped: dict[int, str] = field(default_factory=dict)
    forced: list[int] = field(default_factory=list)  # needed SIGKILL
    left: dict[int, str] = field(default_factory=dict)  # still running: stop failed

    def summary(self, node: Mapping[str, ProcessRef]) -> str:
        named = [f"{name} (pid {ref.pid})" for name, ref in node.items()]
        others = len(self.stopped) - sum(ref.pid in self.stopped for ref in node.values())
        text = ", ".join(named) or "the node"
        text += f" and {others} other processes are gone"
        if self.forced:
            text += f" ({len(self.forced)} needed SIGKILL)"
        return text


def running_parts(state: RuntimeState) -> list[ProcessRef]:
    """The recorded processes of the cluster `up` started that still run."""
    refs = [state.leader, *state.node.values()] if state.leader else [*state.node.values()]
    return [ref for ref in refs if ref.is_running()]


def stop(state: RuntimeState, timeout_s: float = 30) -> StopReport:
    """SIGTERM the cluster `up` started (its process group, and the processes under it),
    wait for every one to exit, SIGKILL what is left after `timeout_s`.

    Only processes proven to be the recorded ones (PID and start time) anchor the search,
    so a reused PID is never signalled.
    """
    if state.pgid is None:
        raise LocalRayError("the state file names no process group to stop")
    roots = [ref.pid for ref in running_parts(state)]
    if not roots:
        return StopReport()
    return stop_processes(state.pgid, roots, timeout_s)


def stop_processes(pgid: int | None, roots: list[int], timeout_s: float) -> StopReport:
    """Stop `roots`, what runs under them, and their process group `pgid`.

    The group is signalled only while one of the roots is still in it: an emptied group's
    id may be taken by an unrelated process.
    """
    if not any(_pgid_of(pid) == pgid for pid in roots):
        pgid = None
    report = StopReport(stopped=cluster_processes(pgid, roots))
    _signal(pgid, report.stopped, signal.SIGTERM)
    if not _wait_gone(report.stopped, timeout_s):
        report.forced = [pid for pid in report.stopped if is_alive(pid)]
        _signal(pgid, report.stopped, signal.SIGKILL)
        _wait_gone(report.stopped, 10)
    # Anything that joined the group while it went down is stopped as well.
    late = {p.pid: p.name for p in processes() if pgid is not None and p.pgid == pgid}
    if late:
        _signal(pgid, late, signal.SIGKILL)
        _wait_gone(late, 10)
    report.left = {pid: name for pid, name in {**report.stopped, **late}.items() if is_alive(pid)}
    return report


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _signal(pgid: int | None, pids: Iterable[int], sig: signal.Signals) -> None:
    if pgid is not None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(pids: Iterable[int], timeout_s: float) -> bool:
    pending = set(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        pending = {pid for pid in pending if is_alive(pid)}
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
