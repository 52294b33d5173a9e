"""Setup of an agent actor's worker process, run by Ray before the actor is created.

Ray's serialization context registers Arrow serializers whenever pyarrow is installed
(LanceDB brings it), and importing pyarrow maps libarrow and numpy into the process:
about 35 MB resident in every agent actor, none of which sends Arrow tables through Ray.
The context is created here, once, with pyarrow and starlette hidden, so the optional
registrations are skipped; both import normally afterwards for code that needs them
(an Arrow table sent to an agent is then pickled by pyarrow's own reducer).

`global_worker` is Ray-internal: should a later Ray create the context before the hook
runs, this only finds it made, and the process carries pyarrow as before.
"""

from __future__ import annotations

import sys

_HIDDEN = ("pyarrow", "starlette")


def setup() -> None:
    """Ray's `worker_process_setup_hook` for agent actors (see the module docstring)."""
    from ray._private.worker import global_worker

    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        global_worker.get_serialization_context()
    finally:
        for name in hidden:
            del sys.modules[name]
