"""`python`: run a model's Python snippet in a limited child process.

The child is `sys.executable -I -B -X utf8 _sandbox_prelude.py` with an empty
environment, in a fresh temporary directory, in its own session (process group), with
stdin closed. The prelude (see `_sandbox_prelude.py`) isolates the network, sets
the rlimits, drops root, installs an audit hook, and then runs the code. Here, in the
parent, the wall-time limit is enforced by killing the whole process group, output is
captured up to `python_output_max_bytes` per stream (the rest is drained and dropped so
the child never blocks on a full pipe), and at most `python_max_concurrent` children
run at once.

A snippet that fails (non-zero exit, traceback, limit hit) is still a *result*: the
model reads stderr and the flags and tries again. Only a sandbox that cannot start at
all raises `ToolError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from actorchestra.actors.tools import _sandbox_prelude as prelude
from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.actors.tools.errors import ToolError
from actorchestra.actors.tools.registry import Tool

logger = logging.getLogger(__name__)

_READ_CHUNK = 65_536
_MAX_PROCESSES = 32
_NOBODY = (65534, 65534)


class PythonRunResult(BaseModel):
    """What came of one run; every limit that fired has its flag set."""

    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    cpu_limit_exceeded: bool
    killed_for_memory: bool
    isolation: list[str]
    duration_ms: float


class _Capture:
    """Keeps the first `limit` bytes of a stream and drains the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_READ_CHUNK):
            room = self.limit - len(self.data)
            if len(chunk) > room:
                self.data.extend(chunk[: max(room, 0)])
                self.truncated = True
            else:
                self.data.extend(chunk)

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", errors="replace")


class PythonSandbox:
    """Runs snippets under the limits in `config`; one instance per agent is enough."""

    def __init__(self, config: ToolsConfig, *, audit_hook: bool = True) -> None:
        """`audit_hook=False` leaves only the kernel layers; tests use it to check them."""
        self._config = config
        self._audit_hook = audit_hook
        self._slots = asyncio.Semaphore(config.python_max_concurrent)
        self._warned_stdlib = False

    async def run(self, code: str) -> PythonRunResult:
        """Run `code` to completion or to a limit; see the module docstring."""
        async with self._slots:
            workdir = await asyncio.to_thread(self._prepare, code)
            try:
                return await self._run_in(workdir)
            finally:
                await asyncio.to_thread(shutil.rmtree, workdir, True)

    def _prepare(self, code: str) -> Path:
        workdir = Path(tempfile.mkdtemp(prefix="actorchestra-py-"))
        (workdir / "main.py").write_text(code, encoding="utf-8")
        drop_to = self._drop_to()
        if drop_to is not None:
            os.chown(workdir, *drop_to)
            if not self._warned_stdlib and not _world_readable(Path(os.__file__).parent):
                self._warned_stdlib = True
                logger.warning(
                    "the python tool drops to uid %s but the standard library at %s is not "
                    "readable by other users: snippets can import only the preloaded modules "
                    "(ToolsConfig.python_preload)",
                    drop_to[0],
                    Path(os.__file__).parent,
                )
        return workdir

    def _drop_to(self) -> tuple[int, int] | None:
        if not self._config.python_drop_privileges or os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam("nobody")
        except KeyError:
            return _NOBODY
        return entry.pw_uid, entry.pw_gid

    async def _run_in(self, workdir: Path) -> PythonRunResult:
        config = self._config
        settings = {
            "cpu_s": config.python_cpu_s,
            "memory_mb": config.python_memory_mb,
            "file_size_mb": config.python_file_size_mb,
            "isolate_network": True,
            "preload": list(config.python_preload),
            "drop_to": self._drop_to(),
            "max_processes": _MAX_PROCESSES,
            "audit_hook": self._audit_hook,
        }
        t0 = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-B",
                "-X",
                "utf8",
                prelude.__file__,
                json.dumps(settings),
                cwd=workdir,
                env={},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolError(f"could not start the python sandbox: {exc}") from exc
        out = _Capture(config.python_output_max_bytes)
        # The prelude's first stderr line (the isolation report) is not counted.
        err = _Capture(config.python_output_max_bytes + 1024)
        timed_out = False
        try:
            async with asyncio.timeout(config.python_wall_s):
                await asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr), proc.wait())
        except TimeoutError:
            timed_out = True
        finally:
            # Kill the whole group: on timeout, on cancellation, and after a normal exit
            # (anything the snippet left behind goes too).
            _kill_group(proc.pid)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        duration_ms = (time.perf_counter() - t0) * 1000.0
        isolation, stderr = _split_report(err.text())
        stderr, stderr_truncated = _clip(stderr, config.python_output_max_bytes, err.truncated)
        code = proc.returncode
        return PythonRunResult(
            exit_code=code,
            stdout=out.text(),
            stderr=stderr,
            stdout_truncated=out.truncated,
            stderr_truncated=stderr_truncated,
            timed_out=timed_out,
            cpu_limit_exceeded=not timed_out and code in (-signal.SIGXCPU, -signal.SIGKILL),
            killed_for_memory=code == prelude.MEMORY_EXIT_CODE,
            isolation=isolation,
            duration_ms=duration_ms,
        )


def _world_readable(directory: Path) -> bool:
    """Whether a user with no special rights can read `directory` (every parent searchable)."""
    try:
        if not directory.stat().st_mode & stat.S_IROTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in [directory, *directory.parents])
    except OSError:
        return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _split_report(stderr: str) -> tuple[list[str], str]:
    """The prelude's isolation report and the user's stderr after it."""
    if not stderr.startswith(prelude.MARKER):
        # The prelude failed before reporting; its stderr is the story.
        return [], stderr
    line, _, rest = stderr.partition("\n")
    try:
        layers = json.loads(line[len(prelude.MARKER) :])
    except json.JSONDecodeError:
        return [], stderr
    return [str(x) for x in layers], rest


def _clip(text: str, limit: int, truncated: bool) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, truncated
    return data[:limit].decode("utf-8", errors="ignore"), True


def python_tool(config: ToolsConfig, sandbox: PythonSandbox | None = None) -> Tool:
    """The `python` tool over a `PythonSandbox` built from `config`."""
    runner = sandbox or PythonSandbox(config)

    async def python(code: str) -> dict[str, Any]:
        return (await runner.run(code)).model_dump()

    return Tool(
        name="python",
        description=(
            "Run a Python 3 program and return its exit code, stdout and stderr. Print what "
            "you want to see. No network, no subprocesses, a fresh empty working directory; "
            f"limits: {config.python_cpu_s}s CPU, {config.python_memory_mb} MB memory, "
            f"{config.python_wall_s:g}s wall time, {config.python_output_max_bytes} bytes "
            "of output per stream."
        ),
        parameters={
            "type": "object",
            "properties": {"code": {"type": "string", "description": "the program's source"}},
            "required": ["code"],
            "additionalProperties": False,
        },
        fn=python,
        timeout_s=config.python_wall_s + 10.0,
    )
