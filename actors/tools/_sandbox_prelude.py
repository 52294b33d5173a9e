"""Runs first inside the python tool's child process, then runs the user's `main.py`.

This file is executed as a script (`python -I -B <this file> <config json>`), never
imported by the runtime. Doing the set-up here rather than in a `preexec_fn` keeps
`fork()` in the parent free of Python code, which matters in a threaded Ray worker.

Layers, in order, each reported back in the first line of stderr:

1. `netns`: a new, empty network namespace (`unshare(CLONE_NEWNET)` as root, or
   `CLONE_NEWUSER|CLONE_NEWNET` where unprivileged user namespaces are allowed). No
   interface but a downed loopback: nothing can be reached, DNS included.
2. rlimits: CPU seconds (SIGXCPU, then SIGKILL a second later), address space, file
   size, no core files, a small open-file count.
3. `uid:<n>`: as root, drop to `nobody` (so the rlimits cannot be raised again, other
   users' files and processes are out of reach).
4. `audit-hook`: a `sys.addaudithook` hook that refuses socket use (except socketpair),
   name resolution, process creation, signals, rlimit changes and ctypes. On its own
   this is not a security boundary (CPython's audit hooks can be evaded by determined
   code); with the layers above it closes the easy paths, and it is what stands when
   the kernel layers are not available.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import traceback

MARKER = "__actorchestra_sandbox__ "
MEMORY_EXIT_CODE = 86
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


def _unshare_network() -> str | None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNET) == 0:
            return "netns"
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
            return "userns+netns"
    except (ImportError, OSError, AttributeError):
        pass
    return None


def _set_limits(cfg: dict[str, int]) -> None:
    cpu = cfg["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    memory = cfg["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = cfg["file_size_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def _drop_privileges(uid: int, gid: int, max_processes: int) -> str:
    # The process count limit only binds a non-root user; set it before becoming one.
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    return f"uid:{uid}"


def _make_hook() -> object:
    import socket

    af_unix = socket.AF_UNIX
    blocked = frozenset(
        {
            "socket.connect",
            "socket.getaddrinfo",
            "socket.gethostbyname",
            "socket.gethostbyaddr",
            "socket.gethostbyname_ex",
            "socket.getnameinfo",
            "socket.sendto",
            "socket.sendmsg",
            "os.fork",
            "os.forkpty",
            "os.exec",
            "os.posix_spawn",
            "os.spawn",
            "os.system",
            "subprocess.Popen",
            "pty.spawn",
            "os.kill",
            "os.killpg",
            "resource.setrlimit",
            "resource.prlimit",
            "sys.remote_exec",
        }
    )
    blocked_modules = frozenset({"_posixsubprocess", "_ctypes", "ctypes", "_xxsubinterpreters"})

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in blocked or event.startswith("ctypes."):
            raise PermissionError(f"{event} is not allowed in this sandbox")
        if event == "socket.__new__" and len(args) > 1 and args[1] not in (af_unix, -1):
            raise PermissionError("network sockets are not allowed in this sandbox")
        if event == "socket.bind" and getattr(args[0], "family", None) != af_unix:
            raise PermissionError("socket.bind is not allowed in this sandbox")
        if event == "import" and args and args[0] in blocked_modules:
            raise PermissionError(f"importing {args[0]} is not allowed in this sandbox")
        if event == "object.__setattr__" and len(args) > 1 and args[1] == "__code__":
            raise PermissionError("replacing __code__ is not allowed in this sandbox")

    return hook


def main() -> None:
    cfg = json.loads(sys.argv[1])
    layers: list[str] = []
    if cfg["isolate_network"]:
        layer = _unshare_network()
        if layer:
            layers.append(layer)
    _set_limits(cfg)
    for name in cfg["preload"]:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # Anything that can start a process goes, so a later `import` has to find it again
    # (and the audit hook sees that import).
    for name in ("subprocess", "_posixsubprocess", "ctypes", "_ctypes"):
        sys.modules.pop(name, None)
    with open("main.py", encoding="utf-8") as f:
        source = f.read()
    code = compile(source, "main.py", "exec")
    hook = _make_hook()  # imports what it needs while it still can
    if cfg.get("drop_to") is not None and os.geteuid() == 0:
        uid, gid = cfg["drop_to"]
        layers.append(_drop_privileges(uid, gid, cfg["max_processes"]))
    if cfg.get("audit_hook", True):
        sys.addaudithook(hook)  # type: ignore[arg-type]
        layers.append("audit-hook")
    sys.stderr.write(MARKER + json.dumps(layers) + "\n")
    sys.stderr.flush()
    namespace = {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}
    del cfg, source
    try:
        exec(code, namespace)
    except SystemExit:
        raise
    except MemoryError:
        sys.stdout.flush()
        sys.stderr.write("MemoryError: the memory limit was reached\n")
        sys.stderr.flush()
        os._exit(MEMORY_EXIT_CODE)
    except BaseException as exc:
        # Show the traceback from the user's code down, not this file's frames.
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "main.py":
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()
        sys.exit(1)


if __name__ == "__main__":
    main()
