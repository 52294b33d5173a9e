"""Agent actor processes skip Ray's Arrow serializers at start (`actors.worker_setup`)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ray._private import ray_constants

from actorchestra.actors.spec import AGENT_SETUP_HOOK, RAY_SETUP_HOOK_ENV, AgentRuntimeOptions
from actorchestra.actors.worker_setup import setup


def test_the_hook_is_named_where_ray_reads_it() -> None:
    assert RAY_SETUP_HOOK_ENV == ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR
    env = AgentRuntimeOptions().agent_process_env()
    assert env[RAY_SETUP_HOOK_ENV] == AGENT_SETUP_HOOK
    assert f"{setup.__module__}.{setup.__name__}" == AGENT_SETUP_HOOK  # Ray imports it so


def test_a_users_own_setup_hook_is_left_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RAY_SETUP_HOOK_ENV, "mine.setup")
    assert RAY_SETUP_HOOK_ENV not in AgentRuntimeOptions().agent_process_env()


def test_setup_leaves_pyarrow_out_yet_importable() -> None:
    """In a fresh interpreter (Ray's worker is one): the serialization context exists,
    pyarrow and numpy are not loaded, and both import afterwards."""
    code = (
        "import sys\n"
        "from actorchestra.actors.worker_setup import setup\n"
        "setup()\n"
        "from ray._private.worker import global_worker\n"
        "assert global_worker.serialization_context_map, 'no context'\n"
        "assert 'pyarrow' not in sys.modules and 'numpy' not in sys.modules\n"
        "import pyarrow\n"
        "print(pyarrow.table({'n': [1, 2]}).num_rows)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
