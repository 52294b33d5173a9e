"""`Agent` and `@skill`: the card a class declares, and which skill answers a message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from a2a.types import a2a_pb2
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol

from actorchestra.actors.agent import Agent, SkillContext, skill
from actorchestra.actors.examples import TextAgent
from actorchestra.protocol.cards import AgentInfo, build_agent_card, card_to_info


class TravelDesk(Agent):
    """Books trips and answers questions about them.

    This second paragraph is not part of the card description.
    """

    version = "2.1.0"

    @skill(
        tags=["flight", "travel"],
        examples=["book a flight to Oslo"],
        input_modes=["text/plain"],
        output_modes=["application/json"],
    )
    async def book_flight(self, ctx: SkillContext) -> dict[str, str]:
        """Book a flight
        to the city named in the message.

        Details that stay out of the card.
        """
        return {"booked": ctx.text}

    @skill(id="weather-report", name="Weather", description="Forecast for a city.")
    async def weather(self, ctx: SkillContext) -> str:
        return "sunny"

    @skill
    async def chat(self, ctx: SkillContext) -> AsyncIterator[str]:
        """Small talk, streamed."""
        yield "hi"

    async def helper(self) -> None:
        """Not a skill: no decorator."""


class Named(Agent):
    name = "concierge"
    description = "Set on the class."

    @skill
    async def ask(self, ctx: SkillContext) -> str:
        return "ok"


# -- card derivation ----------------------------------------------------------------------


def test_agent_info_comes_from_the_class() -> None:
    info = TravelDesk.agent_info()
    assert info.name == "traveldesk"
    assert info.description == "Books trips and answers questions about them."
    assert info.version == "2.1.0"
    skills = {s.id: s for s in info.skills}
    assert set(skills) == {"book_flight", "weather-report", "chat"}

    flight = skills["book_flight"]
    assert flight.name == "book flight"
    assert flight.description == "Book a flight to the city named in the message."
    assert flight.tags == ["flight", "travel"]
    assert flight.examples == ["book a flight to Oslo"]
    assert flight.input_modes == ["text/plain"]
    assert flight.output_modes == ["application/json"]

    weather = skills["weather-report"]
    assert (weather.name, weather.description) == ("Weather", "Forecast for a city.")
    assert skills["chat"].description == "Small talk, streamed."


def test_class_attributes_and_spec_overrides_win() -> None:
    info = Named.agent_info()
    assert (info.name, info.description) == ("concierge", "Set on the class.")
    info = Named.agent_info(name="front-desk", description="From the config.")
    assert (info.name, info.description) == ("front-desk", "From the config.")


def test_card_has_both_interfaces_at_the_base_url() -> None:
    card = build_agent_card(TravelDesk.agent_info(), "http://127.0.0.1:8000/a2a/traveldesk/")
    assert isinstance(card, a2a_pb2.AgentCard)
    assert card.name == "traveldesk"
    assert card.description == "Books trips and answers questions about them."
    assert card.version == "2.1.0"
    interfaces = {
        i.protocol_binding: (i.url, i.protocol_version) for i in card.supported_interfaces
    }
    base = "http://127.0.0.1:8000/a2a/traveldesk"
    assert interfaces == {
        TransportProtocol.JSONRPC.value: (base, PROTOCOL_VERSION_1_0),
        TransportProtocol.HTTP_JSON.value: (base, PROTOCOL_VERSION_1_0),
    }
    assert card.capabilities.streaming is True
    assert card.capabilities.push_notifications is True
    assert card.capabilities.extended_agent_card is False
    assert card.provider.organization == "actorchestra"
    assert "text/plain" in card.default_input_modes
    assert "application/json" in card.default_output_modes

    skills = {s.id: s for s in card.skills}
    assert set(skills) == {"book_flight", "weather-report", "chat"}
    assert list(skills["book_flight"].tags) == ["flight", "travel"]
    assert list(skills["book_flight"].examples) == ["book a flight to Oslo"]
    assert list(skills["book_flight"].output_modes) == ["application/json"]
    assert skills["weather-report"].name == "Weather"


def test_card_description_falls_back_to_the_names() -> None:
    info = AgentInfo(name="bare", skills=[{"id": "s", "name": "do it"}])
    card = build_agent_card(info, "http://h/a2a/bare")
    assert card.description == "bare agent"
    assert card.skills[0].description == "do it"


def test_card_to_info_round_trips() -> None:
    info = TravelDesk.agent_info()
    assert card_to_info(build_agent_card(info, "http://h/a2a/traveldesk")) == info


def test_text_agent_card_lists_its_examples() -> None:
    card = build_agent_card(TextAgent.agent_info(), "http://h/a2a/text")
    skills = {s.id: s for s in card.skills}
    assert {"word_count", "uppercase", "stream", "greet"} == set(skills)
    assert list(skills["uppercase"].examples) == ["uppercase: hello"]
    assert "count" in skills["word_count"].tags


# -- declaration errors -------------------------------------------------------------------


def test_duplicate_skill_id_is_an_error() -> None:
    class Twice(Agent):
        @skill(id="same")
        async def one(self, ctx: SkillContext) -> str:
            return "1"

        @skill(id="same")
        async def two(self, ctx: SkillContext) -> str:
            return "2"

    with pytest.raises(TypeError, match=r"Twice declares skill id 'same' twice"):
        Twice.skills()
    with pytest.raises(TypeError, match="twice"):
        Twice.agent_info()


@pytest.mark.parametrize("bare", [True, False])
def test_a_skill_must_be_async(bare: bool) -> None:
    def sync_skill(self: Agent, ctx: SkillContext) -> str:
        return "no"

    with pytest.raises(TypeError, match=r"sync_skill must be `async def`"):
        skill(sync_skill) if bare else skill(tags=["x"])(sync_skill)


def test_an_agent_needs_a_skill() -> None:
    class Silent(Agent):
        """Has nothing to offer."""

        async def not_a_skill(self) -> None: ...

    assert Silent.skills() == {}
    with pytest.raises(TypeError, match=r"Silent has no @skill methods"):
        Silent.agent_info()


def test_skill_function_is_bound_and_unknown_ids_raise() -> None:
    agent = TravelDesk()
    assert agent.skill_function("weather-report") == agent.weather
    with pytest.raises(KeyError):
        agent.skill_function("helper")


def test_options_reach_the_instance() -> None:
    assert TravelDesk(currency="NOK").options == {"currency": "NOK"}


# -- choose_skill -------------------------------------------------------------------------


def test_requested_skill_wins_over_the_text() -> None:
    agent = TravelDesk()
    assert agent.choose_skill("book a flight please", "weather-report") == "weather-report"


def test_unknown_requested_skill_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        TravelDesk().choose_skill("book a flight", "nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I need a FLIGHT for my travel", "book_flight"),  # two tags
        ("what's the weather-report today", "weather-report"),  # the id
        ("Weather in Bergen?", "weather-report"),  # the name
        ("let's chat", "chat"),
    ],
)
def test_best_match_by_id_name_or_tags(text: str, expected: str) -> None:
    assert TravelDesk().choose_skill(text, None) == expected


def test_more_matching_words_beat_fewer() -> None:
    # "count" is a tag of both word_count and stream; "words" only of word_count.
    assert TextAgent().choose_skill("count the words", None) == "word_count"
    assert TextAgent().choose_skill("stream 5, count slow", None) == "stream"


def test_no_match_falls_back_to_the_first_skill() -> None:
    agent = TravelDesk()
    first = next(iter(TravelDesk.skills()))
    assert agent.choose_skill("zzz qqq", None) == first
    assert agent.choose_skill("", None) == first
