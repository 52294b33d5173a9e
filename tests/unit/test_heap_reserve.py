"""Actor processes touch their small-object heap at start-up (`actors.runtime`), so the
first burst of work after it does not page-fault its way through new arenas."""

from __future__ import annotations

import gc
import subprocess
import sys

from actorchestra.actors import runtime
from actorchestra.actors.runtime import (
    GC_YOUNG,
    HEAP_RESERVE_MIB,
    RayAgentActor,
    freeze_startup_objects,
    reserve_small_object_heap,
)
from actorchestra.actors.spec import AgentRuntimeOptions, AgentSpec

# A fresh interpreter (an actor's process is one): page faults of a 4 MiB burst of small
# objects, as an agent's first batch makes, after a reserve of the given size.
_BURST = (
    "import resource, sys\n"
    "from actorchestra.actors.runtime import reserve_small_object_heap\n"
    "pinned = reserve_small_object_heap(int(sys.argv[1]))\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "burst = [{'id': i, 'text': f'item {i}'} for i in range(12_000)]\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
)


def _burst_faults(reserve_mib: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _BURST, str(reserve_mib)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip())


def test_a_reserved_heap_takes_a_burst_without_page_faults() -> None:
    cold = _burst_faults(0)
    warm = _burst_faults(HEAP_RESERVE_MIB)
    assert cold > 500, cold  # 4 MiB of new arenas: ~1,000 pages
    assert warm < cold / 5, (cold, warm)


def test_the_reserve_pins_a_few_small_objects_only() -> None:
    pinned = reserve_small_object_heap(4)
    # one object per 256 KiB of the reserve, not the reserve itself
    assert 4 <= len(pinned) <= 64
    assert sum(sys.getsizeof(p) for p in pinned) < 64 * 1024
    assert reserve_small_object_heap(0) == []


def test_freeze_collects_less_often_and_returns_the_reserve() -> None:
    threshold = gc.get_threshold()
    try:
        pinned = freeze_startup_objects(1)
        assert gc.get_threshold()[0] == GC_YOUNG
        assert gc.get_freeze_count() > 0
        assert pinned
        assert runtime._heap_reserve is pinned  # held for the process, not by the caller
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_an_agent_replica_reserves_what_its_options_say() -> None:
    """`runtime.agent.heap_reserve_mib` (ACTORCHESTRA_AGENT_HEAP_RESERVE_MIB) reaches the
    replica: 0 keeps no reserve at all."""
    threshold = gc.get_threshold()
    spec = AgentSpec(name="echo", cls="actorchestra.actors.examples:EchoAgent")
    try:
        pinned = {}
        for mib in (2, 0):
            options = AgentRuntimeOptions(heap_reserve_mib=mib)
            RayAgentActor(spec, 0, "http://127.0.0.1:8000/a2a/echo", options)
            pinned[mib] = len(runtime._heap_reserve)
        assert 2 <= pinned[2] <= 32 and pinned[0] == 0, pinned
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
