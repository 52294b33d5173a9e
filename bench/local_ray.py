"""What every benchmark here starts the same way: free ports, Serve's mode, a Ray of its own."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_serve_mode(mode: str) -> None:
    """Before `import ray`: Serve's throughput mode with HAProxy (the runtime's default) or
    its standard proxy; the node stays on loopback."""
    if mode == "throughput":
        os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        # HAProxy's own stats/metrics listeners default to fixed ports; keep them free.
        os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
        os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def init_local_ray(namespace: str) -> None:
    """address="local": a cluster of its own, never one that RAY_ADDRESS or
    /tmp/ray/ray_current_cluster points at (another session's `actorchestra up`)."""
    import ray

    ray.init(address="local", namespace=namespace, include_dashboard=False, logging_level="ERROR")
