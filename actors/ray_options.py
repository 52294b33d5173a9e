"""Ray options shared by the runtime's actors (no Ray import: any process may use it)."""

from __future__ import annotations

from typing import Any


def runtime_actor(name: str, namespace: str, **options: Any) -> dict[str, Any]:
    """Ray options of a runtime actor: named in the runtime's namespace, detached (it
    outlives whoever made it), reused when it exists, restarted by Ray when its process
    dies, and holding no CPU slot unless `options` say otherwise."""
    return {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": -1,
        "num_cpus": 0,
        **options,
    }
