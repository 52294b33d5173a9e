"""The runtime's own endpoints: /health, the agent registry, third-party agents by card URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH

from actorchestra.client import Client
from tests.integration.conftest import Runtime, async_wait_for, free_port
from tests.integration.conftest import test_agents as configured_agents
from tests.integration.third_party import forecast_agent

pytestmark = pytest.mark.integration

# The configured agents, and the orchestrator the runtime adds (the planner as an agent).
LOCAL = {a["name"] for a in configured_agents()} | {"orchestrator"}


@pytest.fixture(scope="module")
def third_party(third_party_port: int) -> Iterator[str]:
    """A third party's agent on loopback, not part of the runtime; yields its card URL.

    Its port is the one the session's runtime allows card fetches to reach.
    """
    with forecast_agent(third_party_port) as card_url:
        yield card_url


@pytest.fixture
async def forecast(
    runtime: Runtime, http: httpx.AsyncClient, third_party: str
) -> AsyncIterator[httpx.Response]:
    """The third-party agent registered as `forecast-remote`; unregistered afterwards."""
    r = await http.post(
        f"{runtime.base_url}/v1/agents", json={"card_url": third_party, "name": "forecast-remote"}
    )
    yield r
    await http.delete(f"{runtime.base_url}/v1/agents/forecast-remote")


async def test_health_reports_ray_and_every_agent(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.get(f"{runtime.base_url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert body["ray"] is True
    assert body["agents"] == dict.fromkeys(sorted(LOCAL), "healthy")
    assert isinstance(body["active_tasks"], int) and body["active_tasks"] >= 0
    assert body["uptime_s"] > 0


async def test_agents_list_shows_skills_and_replica_health(
    runtime: Runtime, http: httpx.AsyncClient
):
    r = await http.get(f"{runtime.base_url}/v1/agents")
    assert r.status_code == 200
    rows = {a["name"]: a for a in r.json()["agents"]}
    assert LOCAL <= set(rows)
    text = rows["text"]
    assert text["kind"] == "local"
    assert text["health"] == "healthy"
    assert {s["id"] for s in text["skills"]} == {"word_count", "uppercase", "stream", "greet"}
    assert [(r["index"], r["healthy"]) for r in text["replicas"]] == [(0, True), (1, True)]
    assert all(r["pid"] and r["last_ok"] for r in text["replicas"])
    assert [s["id"] for s in rows["lab"]["skills"]] == ["arrow", "block", "fail", "sleep"]
    assert len(rows["lab"]["replicas"]) == 1 and len(rows["echo"]["replicas"]) == 1


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"skill": "greet"}, ["text"]),
        ({"skill": "echo"}, ["echo"]),
        ({"tag": "hang"}, ["lab"]),
        ({"tag": "COUNT"}, ["text"]),  # tags match whatever their case
        ({"skill": "no_such_skill"}, []),
        ({"skill": "stream", "tag": "echo"}, []),  # filters combine
    ],
)
async def test_agents_filter_by_skill_and_tag(
    runtime: Runtime, http: httpx.AsyncClient, params: dict[str, str], expected: list[str]
):
    r = await http.get(f"{runtime.base_url}/v1/agents", params=params)
    assert r.status_code == 200
    assert [a["name"] for a in r.json()["agents"] if a["name"] in LOCAL] == expected


async def test_agents_free_text_query_ranks_the_best_match_first(
    runtime: Runtime, http: httpx.AsyncClient
):
    r = await http.get(f"{runtime.base_url}/v1/agents", params={"q": "sleep for a few seconds"})
    best = r.json()["agents"][0]
    assert best["name"] in {"lab", "sleeper"}  # both offer a `sleep` skill
    assert "sleep" in {s["id"] for s in best["skills"]}
    r = await http.get(f"{runtime.base_url}/v1/agents", params={"q": "upper case letters"})
    assert r.json()["agents"][0]["name"] == "text"
    r = await http.get(f"{runtime.base_url}/v1/agents", params={"q": "zzyzx quux"})
    assert r.json()["agents"] == []


async def test_agent_detail_includes_its_card(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.get(f"{runtime.base_url}/v1/agents/text")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "text" and body["health"] == "healthy"
    served = (await http.get(runtime.card_url("text"))).json()
    assert body["card"]["name"] == "text"
    assert body["card"]["supportedInterfaces"] == served["supportedInterfaces"]
    assert [s["id"] for s in body["card"]["skills"]] == [s["id"] for s in served["skills"]]


async def test_unknown_agent_detail_is_404_naming_the_known_ones(
    runtime: Runtime, http: httpx.AsyncClient
):
    r = await http.get(f"{runtime.base_url}/v1/agents/nobody")
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["reason"] == "AGENT_NOT_FOUND"
    assert "'nobody'" in error["message"]
    assert all(name in error["message"] for name in LOCAL)


async def test_third_party_agent_registers_by_card_url_and_unregisters(
    runtime: Runtime, http: httpx.AsyncClient, forecast: httpx.Response, third_party: str
):
    assert forecast.status_code == 201, forecast.text
    row = forecast.json()
    assert row["name"] == "forecast-remote" and row["kind"] == "remote"
    assert row["card_url"] == third_party
    assert row["endpoint"] == third_party.removesuffix(AGENT_CARD_WELL_KNOWN_PATH)
    assert [s["id"] for s in row["skills"]] == ["weather"]

    async def healthy() -> bool:
        r = await http.get(f"{runtime.base_url}/v1/agents/forecast-remote")
        return r.json()["health"] == "healthy"

    await async_wait_for(healthy, 10, "the registry probes the third-party card")
    detail = (await http.get(f"{runtime.base_url}/v1/agents/forecast-remote")).json()
    assert detail["card"]["name"] == "forecast" and detail["card"]["version"] == "2.1.0"
    found = (await http.get(f"{runtime.base_url}/v1/agents", params={"tag": "rain"})).json()
    assert [a["name"] for a in found["agents"]] == ["forecast-remote"]
    health = (await http.get(f"{runtime.base_url}/health")).json()
    assert health["agents"]["forecast-remote"] == "healthy"

    r = await http.delete(f"{runtime.base_url}/v1/agents/forecast-remote")
    assert r.status_code == 204
    assert (await http.get(f"{runtime.base_url}/v1/agents/forecast-remote")).status_code == 404
    again = await http.delete(f"{runtime.base_url}/v1/agents/forecast-remote")
    assert again.status_code == 404
    listed = (await http.get(f"{runtime.base_url}/v1/agents")).json()["agents"]
    assert {a["name"] for a in listed} == LOCAL


async def test_a_workflow_step_naming_the_third_party_agent_runs_there(
    runtime: Runtime, forecast: httpx.Response
) -> None:
    assert forecast.status_code == 201, forecast.text
    async with Client(runtime.base_url) as client:
        task = await client.run(
            "weather",
            workflow={
                "kind": "sequential",
                "steps": [{"agent": "forecast-remote", "input": "Oslo tomorrow?"}],
            },
            synthesize=False,
            timeout_s=60,
        )
    assert task["state"] == "completed", task["error"]
    assert task["subtasks"][0]["agent"] == "forecast-remote"
    assert task["result"] == "sunny"  # the planner called the third party over HTTP


async def test_registering_an_unreadable_card_url_is_refused(
    runtime: Runtime, http: httpx.AsyncClient, third_party: str
):
    # an allowed address, but no card there
    nowhere = third_party.replace(AGENT_CARD_WELL_KNOWN_PATH, "/no-card-here.json")
    r = await http.post(f"{runtime.base_url}/v1/agents", json={"card_url": nowhere})
    assert r.status_code == 422
    assert "could not read an A2A agent card" in r.json()["error"]["message"]
    r = await http.post(f"{runtime.base_url}/v1/agents", json={"card_url": "ftp://x/card.json"})
    assert r.status_code == 422
    assert "absolute http(s) URL" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1:{free}", "loopback"),  # the runtime's machine, a port not allowed
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("10.0.0.7:8080", "private"),
    ],
)
async def test_a_card_url_on_a_private_address_is_refused_naming_the_setting(
    runtime: Runtime, http: httpx.AsyncClient, host: str, reason: str
):
    """The registry must not fetch into the network it runs in on a caller's say (SSRF)."""
    url = f"http://{host.format(free=free_port())}{AGENT_CARD_WELL_KNOWN_PATH}"
    r = await http.post(f"{runtime.base_url}/v1/agents", json={"card_url": url, "name": "x"})
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["reason"] == "ADDRESS_REFUSED"
    assert f"a {reason} address" in error["message"]
    assert "ACTORCHESTRA_ALLOWED_HOSTS" in error["message"]
    assert (await http.get(f"{runtime.base_url}/v1/agents/x")).status_code == 404


async def test_a_local_agent_cannot_be_replaced_or_unregistered(
    runtime: Runtime, http: httpx.AsyncClient, third_party: str
):
    r = await http.post(
        f"{runtime.base_url}/v1/agents", json={"card_url": third_party, "name": "text"}
    )
    assert r.status_code == 422
    assert "already registered as local" in r.json()["error"]["message"]
    r = await http.delete(f"{runtime.base_url}/v1/agents/text")
    assert r.status_code == 422
    assert "local agent" in r.json()["error"]["message"]
    detail = (await http.get(f"{runtime.base_url}/v1/agents/text")).json()
    assert detail["kind"] == "local" and detail["card"]["name"] == "text"
