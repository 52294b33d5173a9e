"""Deploying again reaches the runtime's long-lived actors, and the planner's process runs
with the agents' environment.

The registry and the planner are detached actors that outlive a deploy; a redeploy (`up`
again, `serve deploy` with a changed file) must hand them its settings without restarting
them. Like `test_auth`, this module deploys a small runtime of its own (the `lab` agent)
into the session's Serve under a route prefix, with its own namespace and data dir, then
deploys it again with another config, as Serve does for a changed file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from actorchestra.client import Client
from tests.integration.conftest import Runtime, async_wait_for, free_port, wait_for
from tests.integration.third_party import forecast_agent

pytestmark = pytest.mark.integration

APP = "actorchestra-redeploy"
PREFIX = "/redeploy"
NAMESPACE = "actorchestra-test-redeploy"
OTEL = "OTEL_INSTRUMENTATION_A2A_SDK_ENABLED"
LAB = {"name": "lab", "cls": "tests.agents:LabAgent"}


@dataclass
class Deployed:
    base: str
    runtime: Runtime
    data_dir: Path

    def deploy(
        self,
        allowed_hosts: list[str],
        probe_timeout_s: float,
        agents: list[dict[str, Any]] | None = None,
    ) -> None:
        """Deploy (or deploy again) with these settings; returns once it serves them."""
        from ray import serve

        from actorchestra.serve_apps.builder import build_runtime

        app = build_runtime(
            {
                "agents": agents or [LAB],
                "runtime": {
                    "namespace": NAMESPACE,
                    "public_url": self.base,
                    "health_interval_s": 0.25,
                    "probe_timeout_s": probe_timeout_s,
                    "llm_offline": True,
                    "data_dir": str(self.data_dir),
                    "agent": {
                        "a2a_tracing": True,
                        "llm": {"base_url": self.runtime.model_server.base_url},
                        "tools": {"allowed_hosts": allowed_hosts},
                    },
                },
            }
        )
        serve.run(app, name=APP, route_prefix=PREFIX)
        wait_for(lambda: _healthy(self.base), timeout=60, what="the redeploy runtime healthy")


@pytest.fixture(scope="module")
def deployed(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """The runtime as first deployed: loopback not allowed, probes waiting 2 s."""
    from ray import serve

    from actorchestra.actors.runtime import kill_namespace

    deployed = Deployed(runtime.base_url + PREFIX, runtime, tmp_path_factory.mktemp("redeploy"))
    try:
        deployed.deploy(allowed_hosts=[], probe_timeout_s=2.0)
        yield deployed
    finally:
        serve.delete(APP)
        kill_namespace(NAMESPACE)


@pytest.fixture(scope="module")
def forecast_card() -> Iterator[str]:
    """A third party's agent on a loopback port of its own; its card URL."""
    with forecast_agent(free_port()) as card_url:
        yield card_url


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).json().get("status") == "healthy"
    except (httpx.HTTPError, ValueError):
        return False


def _actor_pid(name: str) -> int:
    """The process of one of the namespace's actors, once it runs.

    Read from Ray's actor table (a private API: nothing public names an actor's process).
    """
    import ray
    from ray._private import state

    actor_id = ray.get_actor(name, namespace=NAMESPACE)._actor_id.hex()
    wait_for(lambda: state.actors(actor_id)["State"] == "ALIVE", 30, f"{name} running")
    return int(state.actors(actor_id)["Pid"])


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


async def _probe_error_of_a_hung_lab(base: str, client: Client, http: httpx.AsyncClient) -> str:
    """Block the lab agent's loop for 2.5 s; what the registry's failed probe said."""
    block = _step("lab", "block", "block 2.5")
    hang = await client.submit("hang", workflow=block, synthesize=False)
    row: dict[str, Any] = {}

    async def lab_unhealthy() -> bool:
        row.update((await http.get(f"{base}/v1/agents/lab")).json())
        return row["health"] == "unhealthy"

    await async_wait_for(lab_unhealthy, 10, "the hung lab agent reported unhealthy")
    assert (await client.wait(hang, timeout_s=30))["state"] == "completed"
    return str(row["replicas"][0]["last_error"])


def _step(agent: str, skill: str, text: str) -> dict[str, Any]:
    return {"kind": "sequential", "steps": [{"agent": agent, "skill": skill, "input": text}]}


async def test_the_planner_runs_with_the_agents_environment(
    deployed: Deployed, http: httpx.AsyncClient
) -> None:
    """`runtime.agent.a2a_tracing` reaches the planner's process (it runs a2a-sdk's client
    for third-party agents) as it does every agent's."""
    lab = (await http.get(f"{deployed.base}/v1/agents/lab")).json()
    assert _environment(lab["replicas"][0]["pid"])[OTEL] == "true"
    assert _environment(_actor_pid("planner"))[OTEL] == "true"


async def test_a_redeploy_hands_the_running_planner_and_registry_its_settings(
    deployed: Deployed, forecast_card: str, http: httpx.AsyncClient
) -> None:
    base = deployed.base
    third_party = forecast_card.removeprefix("http://").split("/")[0]  # 127.0.0.1:<port>
    refused = await http.post(f"{base}/v1/agents", json={"card_url": forecast_card})
    assert refused.status_code == 403, refused.text  # loopback is not allowed yet
    planner = _actor_pid("planner")
    async with Client(base) as client:
        across = await client.submit(
            "nap", workflow=_step("lab", "sleep", "sleep 2"), synthesize=False
        )

        await asyncio.to_thread(deployed.deploy, allowed_hosts=[third_party], probe_timeout_s=0.8)

        # The same planner, its task carried through.
        assert _actor_pid("planner") == planner
        assert (await client.wait(across, timeout_s=30))["state"] == "completed"
        # The registry fetches the card from the newly allowed address, and the planner
        # calls the agent there.
        r = await http.post(f"{base}/v1/agents", json={"card_url": forecast_card})
        assert r.status_code == 201, r.text
        task = await client.run(
            "weather",
            workflow=_step("forecast", "weather", "Oslo tomorrow?"),
            synthesize=False,
            timeout_s=60,
        )
        assert task["state"] == "completed", task["error"]
        assert task["result"] == "sunny"

        # The registry's probes wait the new probe timeout for a hung agent.
        assert await _probe_error_of_a_hung_lab(base, client, http) == "no answer within 0.8s"


async def test_a_restarted_registry_finds_its_agents_and_probes_them_again(
    deployed: Deployed, http: httpx.AsyncClient
) -> None:
    """Ray restarts a registry whose process dies; no deploy calls it then, so it must
    rediscover the agents and resume its health loop by itself. Ray restarts it with
    the first deploy's settings; the ingress hands it the last deploy's again."""
    import ray

    from actorchestra.serve_apps.ingress import REASSERT_S

    registry = ray.get_actor("registry", namespace=NAMESPACE)
    before, killed_at = _actor_pid("registry"), time.time()
    ray.kill(registry, no_restart=False)
    await asyncio.to_thread(
        wait_for, lambda: _actor_pid("registry") != before, 60, "the registry restarted"
    )
    row: dict[str, Any] = {}

    async def lab_probed() -> bool:
        r = await http.get(f"{deployed.base}/v1/agents/lab")
        row.update(r.json() if r.status_code == 200 else {"health": None})
        probed = r.status_code == 200 and (row["replicas"][0].get("last_ok") or 0) > killed_at
        return probed and row["health"] == "healthy"

    await async_wait_for(lab_probed, 30, "the lab agent listed and probed after the restart")

    # The probe timeout is the redeploy's 0.8 s again, not the first deploy's 2 s.
    await asyncio.sleep(max(0.0, killed_at + REASSERT_S + 1 - time.time()))
    async with Client(deployed.base) as client:
        error = await _probe_error_of_a_hung_lab(deployed.base, client, http)
    assert error == "no answer within 0.8s"


async def test_a_redeploy_replaces_changed_agents_and_retires_dropped_ones(
    deployed: Deployed, http: httpx.AsyncClient
) -> None:
    """Agent actors outlive a deploy too; one whose config changed is replaced (after
    the work it runs), and what the new config no longer has is stopped."""
    import ray

    base = deployed.base
    settings = {"allowed_hosts": [], "probe_timeout_s": 2.0}
    await asyncio.to_thread(deployed.deploy, **settings)  # as the module started
    before = (await http.get(f"{base}/v1/agents/lab")).json()
    old_pid = before["replicas"][0]["pid"]
    async with Client(base) as client:
        running = await client.submit(
            "nap", workflow=_step("lab", "sleep", "sleep 1.5"), synthesize=False
        )
        changed = {**LAB, "description": "the lab, revised", "replicas": 2, "concurrency": 1}
        spare = {"name": "spare", "cls": "actorchestra.actors.examples:EchoAgent"}
        await asyncio.to_thread(deployed.deploy, **settings, agents=[changed, spare])

        # The replaced replica finished its work first.
        assert (await client.wait(running, timeout_s=30))["state"] == "completed"
        lab = (await http.get(f"{base}/v1/agents/lab")).json()
        assert lab["revision"] != before["revision"]
        assert lab["concurrency"] == 1 and len(lab["replicas"]) == 2
        assert lab["description"] == "the lab, revised"
        card = (await http.get(f"{base}/a2a/lab/.well-known/agent-card.json")).json()
        assert card["description"] == "the lab, revised"
        assert _actor_pid("agent:lab:0") != old_pid

        # The planner reaches both replicas of the new deploy: two one-at-a-time
        # steps run side by side, one on each.
        started = time.monotonic()
        pair = {
            "kind": "parallel",
            "steps": [{"agent": "lab", "skill": "sleep", "input": "sleep 1"} for _ in "ab"],
        }
        task = await client.run("pair", workflow=pair, synthesize=False, timeout_s=30)
        assert task["state"] == "completed", task["error"]
        assert time.monotonic() - started < 1.9  # not one after the other on one replica

        # Deployed again without `spare` and with one lab replica.
        await asyncio.to_thread(deployed.deploy, **settings)
        assert (await http.get(f"{base}/v1/agents/spare")).status_code == 404
        lab = (await http.get(f"{base}/v1/agents/lab")).json()
        assert len(lab["replicas"]) == 1 and lab["concurrency"] is None
        names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["namespace"] == NAMESPACE}  # fmt: skip
        assert "agent:lab:0" in names
        assert not names & {"agent:lab:1", "agent:spare:0"}
        r = await http.post(
            f"{base}/v1/tasks", json={"input": "x", "workflow": _step("spare", "echo", "hi")}
        )
        assert r.status_code == 422 and "spare" in r.text, r.text
        task = await client.run(
            "nap", workflow=_step("lab", "sleep", "sleep 0.1"), synthesize=False, timeout_s=30
        )
        assert task["state"] == "completed", task["error"]
