"""The registry book: entries, discovery and health decided from probe outcomes.

Probing is the registry's injection point: here it is a plain async function that
answers from a table the test controls (ok, raise, or never answer).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorchestra.protocol.cards import AgentInfo, SkillInfo
from actorchestra.protocol.errors import AgentNotFoundError, InvalidInputError
from actorchestra.registry.models import AgentEntry, AgentKind, Health
from actorchestra.registry.registry import ProbeResult, Registry

PROBE_TIMEOUT_S = 0.05


class Probes:
    """What each replica answers: 'ok', 'fail' (raises), 'hang' (never answers)."""

    def __init__(self) -> None:
        self.behaviour: dict[tuple[str, int], str] = {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, entry: AgentEntry, index: int) -> ProbeResult:
        self.calls.append((entry.name, index))
        how = self.behaviour.get((entry.name, index), "ok")
        if how == "fail":
            raise ConnectionError(f"{entry.name}:{index} refused")
        if how == "hang":
            await asyncio.Event().wait()
        if how == "not-ok":
            return ProbeResult(False, error="replica says it is draining")
        return ProbeResult(True, in_flight=index + 1, tasks=10 * (index + 1), pid=1000 + index)


def _info(name: str, description: str, *skills: SkillInfo) -> AgentInfo:
    return AgentInfo(name=name, description=description, skills=list(skills))


MATH = _info(
    "math",
    "Arithmetic for humans.",
    SkillInfo(
        id="add", name="add numbers", description="Sum a list of numbers.", tags=["math", "sum"]
    ),
    SkillInfo(id="divide", name="divide", description="Quotient of two numbers.", tags=["math"]),
)
TEXT = _info(
    "text",
    "Text utilities.",
    SkillInfo(
        id="word_count", name="word count", description="Count words.", tags=["text", "count"]
    ),
    SkillInfo(id="translate", name="translate", description="Translate text to another language."),
)
WEATHER = _info(
    "weather",
    "Forecasts for cities.",
    SkillInfo(id="forecast", name="forecast", description="Weather forecast.", tags=["weather"]),
)


async def _register(reg: Registry, info: AgentInfo, replicas: int = 1, **kw: Any) -> AgentEntry:
    kind = kw.pop("kind", AgentKind.LOCAL)
    return await reg.register(
        info.name, kind, info, {"name": info.name}, f"/a2a/{info.name}", replicas=replicas, **kw
    )


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
async def reg(probes: Probes) -> Registry:
    # No start-up grace: these tests are about probe outcomes (the grace has its own).
    registry = Registry(prober=probes, probe_timeout_s=PROBE_TIMEOUT_S, startup_grace_s=0.0)
    for info in (MATH, TEXT, WEATHER):
        await _register(registry, info, replicas=2 if info is TEXT else 1)
    return registry


# -- the book -----------------------------------------------------------------------------


async def test_register_get_list_unregister() -> None:
    reg = Registry()
    entry = await _register(reg, MATH, replicas=3, card_url=None)
    assert reg.get("math") is entry
    assert entry.kind is AgentKind.LOCAL
    assert entry.endpoint == "/a2a/math"
    assert [r.index for r in entry.replicas] == [0, 1, 2]
    assert entry.health is Health.UNKNOWN  # nothing probed yet

    await _register(reg, WEATHER)
    await _register(reg, TEXT)
    assert [e.name for e in reg.list()] == ["math", "text", "weather"]

    await reg.unregister("text")
    assert [e.name for e in reg.list()] == ["math", "weather"]
    with pytest.raises(AgentNotFoundError, match="'text'"):
        await reg.unregister("text")


async def test_unknown_agent_error_lists_the_known_ones() -> None:
    reg = Registry()
    with pytest.raises(AgentNotFoundError, match="registered agents: none"):
        reg.get("ghost")
    await _register(reg, WEATHER)
    await _register(reg, MATH)
    with pytest.raises(AgentNotFoundError) as caught:
        reg.get("ghost")
    assert caught.value.message == "no agent named 'ghost'; registered agents: math, weather"


async def test_reregistering_under_another_kind_is_refused() -> None:
    reg = Registry()
    await _register(reg, MATH)
    with pytest.raises(InvalidInputError, match=r"'math' is already registered as local"):
        await _register(reg, MATH, kind=AgentKind.REMOTE, card_url="http://h/a2a/math")
    assert reg.get("math").kind is AgentKind.LOCAL


async def test_reregistering_keeps_known_replica_health(reg: Registry, probes: Probes) -> None:
    await reg.check_health()
    entry = await _register(reg, TEXT, replicas=3)
    assert [r.healthy for r in entry.replicas] == [True, True, None]
    assert entry.health is Health.DEGRADED
    entry = await _register(reg, TEXT, replicas=1)
    assert [r.healthy for r in entry.replicas] == [True]


async def test_another_revision_starts_its_replicas_unknown(reg: Registry) -> None:
    """Registered again with another revision (a deploy replaced its processes), what
    the probes knew of the old replicas no longer holds."""
    await _register(reg, TEXT, replicas=2, revision="r1")
    await reg.check_health()
    entry = await _register(reg, TEXT, replicas=2, revision="r1")
    assert [r.healthy for r in entry.replicas] == [True, True]
    entry = await _register(reg, TEXT, replicas=2, revision="r2")
    assert [r.healthy for r in entry.replicas] == [None, None]
    assert entry.summary()["revision"] == "r2"


def test_summary_shape() -> None:
    entry = AgentEntry(
        name="math", kind=AgentKind.REMOTE, info=MATH, card={}, endpoint="http://h/a2a/math"
    )
    row = entry.summary()
    assert row["kind"] == "remote" and row["health"] == "unknown"
    assert [s["id"] for s in row["skills"]] == ["add", "divide"]


def test_skills_table(reg: Registry) -> None:
    assert reg.skills() == {
        "add": ["math"],
        "divide": ["math"],
        "word_count": ["text"],
        "translate": ["text"],
        "forecast": ["weather"],
    }


async def test_skills_table_lists_every_provider() -> None:
    reg = Registry()
    await _register(reg, MATH)
    await _register(reg, _info("calc", "", SkillInfo(id="add", name="add")))
    assert reg.skills()["add"] == ["calc", "math"]


# -- discovery ----------------------------------------------------------------------------


def test_find_by_skill_id(reg: Registry) -> None:
    assert [e.name for e in reg.find(skill="word_count")] == ["text"]
    assert reg.find(skill="nope") == []


def test_find_by_tag_ignores_case(reg: Registry) -> None:
    assert [e.name for e in reg.find(tag="MATH")] == ["math"]
    assert [e.name for e in reg.find(tag="count")] == ["text"]
    assert reg.find(tag="nope") == []
    assert reg.find(skill="add", tag="weather") == []


def test_find_without_filters_lists_everyone(reg: Registry) -> None:
    assert {e.name for e in reg.find()} == {"math", "text", "weather"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("please add these numbers", ["math"]),  # skill name words
        ("translate this language", ["text"]),  # skill id and description
        ("what's the weather", ["weather"]),  # a tag
        ("sum numbers, count", ["math", "text"]),  # both match; math shares more words
        ("cities", ["weather"]),  # the agent's own description
        ("zebra", []),  # nothing shared: nothing found
    ],
)
def test_find_by_free_text_ranks_best_first(reg: Registry, query: str, expected: list[str]) -> None:
    assert [e.name for e in reg.find(query=query)] == expected


async def test_find_breaks_ties_by_load(reg: Registry) -> None:
    clone = MATH.model_copy(update={"name": "math2"})
    await _register(reg, clone, replicas=2)
    await reg.check_health()  # in flight: math 1, math2 1 + 2
    assert [e.name for e in reg.find(skill="add")] == ["math", "math2"]
    assert [e.name for e in reg.find(query="divide")] == ["math", "math2"]


async def test_healthy_only_drops_unhealthy_agents(reg: Registry, probes: Probes) -> None:
    probes.behaviour[("math", 0)] = "fail"
    probes.behaviour[("text", 1)] = "fail"
    await reg.check_health()
    assert reg.get("text").health is Health.DEGRADED
    assert {e.name for e in reg.find(healthy_only=True)} == {"text", "weather"}
    assert {e.name for e in reg.find()} == {"math", "text", "weather"}
    assert reg.find(tag="math", healthy_only=True) == []


# -- health -------------------------------------------------------------------------------


async def test_probe_outcomes_set_replica_state(reg: Registry, probes: Probes) -> None:
    await reg.check_health()
    assert sorted(probes.calls) == [("math", 0), ("text", 0), ("text", 1), ("weather", 0)]
    text = reg.get("text")
    assert text.health is Health.HEALTHY
    r1 = text.replicas[1]
    assert (r1.healthy, r1.in_flight, r1.tasks, r1.pid) == (True, 2, 20, 1001)
    assert r1.last_ok is not None and r1.last_error is None
    assert text.in_flight == 3


async def test_healthy_unhealthy_healthy_on_probe_error(reg: Registry, probes: Probes) -> None:
    await reg.check_health()
    assert reg.get("math").health is Health.HEALTHY

    probes.behaviour[("math", 0)] = "fail"
    await reg.check_health()
    await reg.check_health()
    replica = reg.get("math").replicas[0]
    assert reg.get("math").health is Health.UNHEALTHY
    assert replica.last_error == "ConnectionError: math:0 refused"
    assert replica.consecutive_failures == 2

    probes.behaviour[("math", 0)] = "ok"
    await reg.check_health()
    replica = reg.get("math").replicas[0]
    assert reg.get("math").health is Health.HEALTHY
    assert (replica.last_error, replica.consecutive_failures) == (None, 0)


async def test_a_probe_that_never_answers_times_out(reg: Registry, probes: Probes) -> None:
    await reg.check_health()
    probes.behaviour[("weather", 0)] = "hang"
    await reg.check_health()  # bounded by the probe timeout, not by the hung probe
    weather = reg.get("weather")
    assert weather.health is Health.UNHEALTHY
    assert weather.replicas[0].last_error == f"no answer within {PROBE_TIMEOUT_S:g}s"
    assert reg.get("math").health is Health.HEALTHY  # the others were probed meanwhile

    probes.behaviour[("weather", 0)] = "ok"
    await reg.check_health()
    assert reg.get("weather").health is Health.HEALTHY


async def test_a_probe_that_answers_not_ok(reg: Registry, probes: Probes) -> None:
    probes.behaviour[("math", 0)] = "not-ok"
    await reg.check_health()
    assert reg.get("math").health is Health.UNHEALTHY
    assert reg.get("math").replicas[0].last_error == "replica says it is draining"


async def test_some_replicas_down_is_degraded(reg: Registry, probes: Probes) -> None:
    probes.behaviour[("text", 0)] = "fail"
    await reg.check_health()
    text = reg.get("text")
    assert text.health is Health.DEGRADED
    assert [r.healthy for r in text.replicas] == [False, True]
    probes.behaviour[("text", 1)] = "hang"
    await reg.check_health()
    assert reg.get("text").health is Health.UNHEALTHY


async def test_an_agent_removed_while_probing_is_skipped() -> None:
    registries: list[Registry] = []

    async def unregister_math_mid_probe(entry: AgentEntry, index: int) -> ProbeResult:
        if entry.name == "math":
            await registries[0].unregister("math")
        return ProbeResult(True)

    reg = Registry(prober=unregister_math_mid_probe, probe_timeout_s=PROBE_TIMEOUT_S)
    registries.append(reg)
    await _register(reg, MATH)
    await _register(reg, WEATHER)
    await reg.check_health()
    assert [e.name for e in reg.list()] == ["weather"]
    assert reg.get("weather").health is Health.HEALTHY


async def test_without_a_prober_health_stays_unknown() -> None:
    reg = Registry()
    await _register(reg, MATH)
    await reg.check_health()
    assert reg.get("math").health is Health.UNKNOWN


async def test_a_replica_that_never_answered_is_starting_within_its_grace(probes: Probes) -> None:
    """Replicas still starting (many processes on few cores) are not reported unhealthy
    until the grace has passed; one that answered once and stops is, at once."""
    reg = Registry(prober=probes, probe_timeout_s=PROBE_TIMEOUT_S, startup_grace_s=30.0)
    await _register(reg, TEXT, replicas=2)
    probes.behaviour[("text", 0)] = "hang"
    await reg.check_health()
    text = reg.get("text")
    assert [r.healthy for r in text.replicas] == [None, True]
    assert text.replicas[0].last_error == f"starting: no answer within {PROBE_TIMEOUT_S:g}s"
    assert text.health is Health.DEGRADED  # one up, one not yet

    probes.behaviour[("text", 0)] = "ok"
    probes.behaviour[("text", 1)] = "fail"  # answered before: unhealthy at once
    await reg.check_health()
    assert [r.healthy for r in reg.get("text").replicas] == [True, False]

    await _register(reg, MATH)
    reg.get("math").registered_at -= 31.0  # registered before the grace: no longer starting
    probes.behaviour[("math", 0)] = "fail"
    await reg.check_health()
    assert reg.get("math").health is Health.UNHEALTHY
    assert reg.get("math").replicas[0].last_error == "ConnectionError: math:0 refused"


async def test_a_remote_agent_that_never_answered_is_unhealthy_at_once(probes: Probes) -> None:
    reg = Registry(prober=probes, probe_timeout_s=PROBE_TIMEOUT_S, startup_grace_s=30.0)
    await _register(reg, WEATHER, kind=AgentKind.REMOTE, card_url="http://weather.example/card")
    probes.behaviour[("weather", 0)] = "fail"
    await reg.check_health()
    assert reg.get("weather").health is Health.UNHEALTHY
