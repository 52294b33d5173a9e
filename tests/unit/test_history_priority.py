"""The history actor's process runs below the planner and agents (recording is background)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import os, threading, time
from actorchestra.actors.planner.actor import lower_priority
ready = threading.Event()
threading.Thread(target=lambda: (ready.set(), time.sleep(5)), daemon=True).start()
ready.wait()
lower_priority(7)
later = []
threading.Thread(target=lambda: later.append(os.getpriority(os.PRIO_PROCESS, 0))).start()
time.sleep(0.2)
nice = [int(open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()[16])
        for t in os.listdir("/proc/self/task")]
print(sorted(set(nice)), later)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_every_thread_and_those_started_later_run_at_the_lower_priority() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "[7] [7]"
