"""`python`: snippets run in a child process with CPU, memory, wall-time and network limits.

Each test names the limit a user would check and looks at what the model would see:
exit code, stdout/stderr and the flags. Limits are set small so the file stays fast.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from actorchestra.actors.tools import PythonSandbox, ToolRegistry, ToolsConfig, python_tool
from actorchestra.actors.tools import _sandbox_prelude as prelude

FAST = ToolsConfig(
    python_cpu_s=1, python_memory_mb=128, python_wall_s=5.0, python_output_max_bytes=4096
)
IS_ROOT = os.geteuid() == 0


@pytest.fixture
def sandbox() -> PythonSandbox:
    return PythonSandbox(FAST)


def _sandbox_processes() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if prelude.__file__.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


async def test_runs_code_and_returns_its_output(sandbox: PythonSandbox) -> None:
    result = await sandbox.run("import math, json\nprint(json.dumps({'root': math.sqrt(2)}))")
    assert result.exit_code == 0
    assert result.stdout == '{"root": 1.4142135623730951}\n'
    assert result.stderr == ""
    assert not (result.timed_out or result.cpu_limit_exceeded or result.killed_for_memory)


async def test_a_failing_snippet_shows_its_own_traceback(sandbox: PythonSandbox) -> None:
    result = await sandbox.run("def f():\n    return 1 / 0\nf()\n")
    assert result.exit_code == 1
    assert 'File "main.py", line 2, in f' in result.stderr
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "_sandbox_prelude" not in result.stderr


async def test_runs_in_an_empty_temp_dir_with_an_empty_environment(
    sandbox: PythonSandbox,
) -> None:
    result = await sandbox.run(
        "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\n"
        "print(sorted(k for k in os.environ if k != 'LC_CTYPE'))\nprint(os.getuid())"
    )
    cwd, listing, env, uid = result.stdout.splitlines()
    assert Path(cwd).name.startswith("actorchestra-py-") and listing == "['main.py']"
    assert env == "[]"
    assert not await asyncio.to_thread(Path(cwd).exists), "the working dir is removed afterwards"
    if IS_ROOT:
        assert uid != "0" and f"uid:{uid}" in result.isolation


async def test_cpu_time_limit_stops_an_infinite_loop(sandbox: PythonSandbox) -> None:
    result = await sandbox.run("while True:\n    pass\n")
    assert result.cpu_limit_exceeded and not result.timed_out
    assert result.exit_code is not None and result.exit_code < 0


async def test_memory_limit_stops_a_huge_allocation(sandbox: PythonSandbox) -> None:
    result = await sandbox.run("block = bytearray(1024 * 1024 * 1024)\nprint('allocated')")
    assert result.killed_for_memory
    assert "allocated" not in result.stdout
    assert "memory limit" in result.stderr


async def test_wall_time_limit_kills_a_sleeping_snippet() -> None:
    sandbox = PythonSandbox(FAST.model_copy(update={"python_wall_s": 0.5}))
    result = await sandbox.run("import time\nprint('start', flush=True)\ntime.sleep(30)")
    assert result.timed_out and not result.cpu_limit_exceeded
    assert result.stdout == "start\n", "output before the kill is kept"
    assert _sandbox_processes() == []


async def test_output_is_truncated_at_the_limit(sandbox: PythonSandbox) -> None:
    result = await sandbox.run("print('x' * 100_000)\nimport sys\nsys.stderr.write('e' * 9000)")
    assert result.stdout_truncated and len(result.stdout) == 4096
    assert result.stderr_truncated and len(result.stderr) == 4096
    assert result.exit_code == 0


async def _listener() -> tuple[asyncio.Server, list[str]]:
    contacts: list[str] = []

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        contacts.append("connected")
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    return server, contacts


_CONNECT = """
import socket
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(("127.0.0.1", {port}))
    print("connected")
except OSError as exc:
    print("refused", type(exc).__name__, exc.errno, exc)
"""


async def test_network_is_refused(sandbox: PythonSandbox) -> None:
    server, contacts = await _listener()
    port = server.sockets[0].getsockname()[1]
    try:
        result = await sandbox.run(_CONNECT.format(port=port))
        resolve = await sandbox.run("import socket\nsocket.getaddrinfo('localhost', 80)")
    finally:
        server.close()
        await server.wait_closed()
    assert result.stdout.startswith("refused PermissionError"), result
    assert "not allowed in this sandbox" in result.stdout
    assert "PermissionError: socket.getaddrinfo is not allowed" in resolve.stderr
    assert contacts == []
    assert "audit-hook" in result.isolation


@pytest.mark.skipif(not IS_ROOT, reason="a network namespace needs root (or user namespaces)")
async def test_network_namespace_alone_refuses_connections() -> None:
    """Without the audit hook the kernel layer still stands: there is no route anywhere."""
    sandbox = PythonSandbox(FAST, audit_hook=False)
    server, contacts = await _listener()
    port = server.sockets[0].getsockname()[1]
    try:
        result = await sandbox.run(_CONNECT.format(port=port))
    finally:
        server.close()
        await server.wait_closed()
    assert "netns" in result.isolation and "audit-hook" not in result.isolation
    assert result.stdout.startswith("refused OSError 101"), result  # ENETUNREACH
    assert contacts == []


async def test_processes_signals_and_limits_cannot_be_touched(sandbox: PythonSandbox) -> None:
    code = """
import os, resource
for label, attempt in [
    ("system", lambda: os.system("id")),
    ("fork", os.fork),
    ("kill", lambda: os.kill(1, 9)),
    ("rlimit", lambda: resource.setrlimit(resource.RLIMIT_CPU, (100, 100))),
]:
    try:
        attempt()
        print(label, "allowed")
    except PermissionError as exc:
        print(label, "refused")
for module in ("subprocess", "ctypes"):
    try:
        __import__(module)
        print(module, "allowed")
    except (PermissionError, ImportError):
        print(module, "refused")
"""
    result = await sandbox.run(code)
    assert result.stdout.split() == [
        "system", "refused", "fork", "refused", "kill", "refused", "rlimit", "refused",
        "subprocess", "refused", "ctypes", "refused",
    ]  # fmt: skip


async def test_cancelling_a_run_kills_its_process(sandbox: PythonSandbox) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sandbox.run("import time\ntime.sleep(30)"), timeout=0.5)
    assert _sandbox_processes() == []


async def test_python_tool_through_the_registry() -> None:
    registry = ToolRegistry([python_tool(FAST)])
    record = await registry.call("python", {"code": "print(sum(range(10)))"})
    assert record.ok and record.result["stdout"] == "45\n" and record.result["exit_code"] == 0
    assert registry.get("python").timeout_s == FAST.python_wall_s + 10.0
