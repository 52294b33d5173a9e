"""Agent cards: derived from a plain description of an agent and its skills."""

from __future__ import annotations

from a2a.types import a2a_pb2
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol
from pydantic import BaseModel, Field


class SkillInfo(BaseModel):
    """What a card says about one skill."""

    id: str
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)
    input_modes: list[str] = Field(default_factory=list)
    output_modes: list[str] = Field(default_factory=list)


class AgentInfo(BaseModel):
    """Everything a card is built from, apart from where the agent is served."""

    name: str
    description: str = ""
    version: str = "0.1.0"
    skills: list[SkillInfo] = Field(default_factory=list)
    streaming: bool = True
    push_notifications: bool = True
    extended_card: bool = False
    input_modes: list[str] = Field(default_factory=lambda: ["text/plain", "application/json"])
    output_modes: list[str] = Field(default_factory=lambda: ["text/plain", "application/json"])
    provider: str = "actorchestra"
    provider_url: str = "https://github.com/actorchestra"


def build_agent_card(info: AgentInfo, base_url: str) -> a2a_pb2.AgentCard:
    """The A2A v1.0 card for `info`, served at `base_url` over JSON-RPC and HTTP+JSON.

    Both bindings share one URL: the JSON-RPC endpoint is `POST {base_url}` and the
    HTTP+JSON paths (`/message:send`, `/tasks/{id}`, ...) hang under it.
    """
    url = base_url.rstrip("/")
    return a2a_pb2.AgentCard(
        name=info.name,
        description=info.description or f"{info.name} agent",
        version=info.version,
        supported_interfaces=[
            a2a_pb2.AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_1_0,
            ),
            a2a_pb2.AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.HTTP_JSON.value,
                protocol_version=PROTOCOL_VERSION_1_0,
            ),
        ],
        provider=a2a_pb2.AgentProvider(organization=info.provider, url=info.provider_url),
        capabilities=a2a_pb2.AgentCapabilities(
            streaming=info.streaming,
            push_notifications=info.push_notifications,
            extended_agent_card=info.extended_card,
        ),
        default_input_modes=list(info.input_modes),
        default_output_modes=list(info.output_modes),
        skills=[
            a2a_pb2.AgentSkill(
                id=s.id,
                name=s.name,
                description=s.description or s.name,
                tags=list(s.tags),
                examples=list(s.examples),
                input_modes=list(s.input_modes),
                output_modes=list(s.output_modes),
            )
            for s in info.skills
        ],
    )


def card_to_info(card: a2a_pb2.AgentCard) -> AgentInfo:
    """The plain description of a card, for a registry entry (remote agents included)."""
    return AgentInfo(
        name=card.name,
        description=card.description,
        version=card.version,
        streaming=card.capabilities.streaming,
        push_notifications=card.capabilities.push_notifications,
        extended_card=card.capabilities.extended_agent_card,
        input_modes=list(card.default_input_modes),
        output_modes=list(card.default_output_modes),
        skills=[
            SkillInfo(
                id=s.id,
                name=s.name,
                description=s.description,
                tags=list(s.tags),
                examples=list(s.examples),
                input_modes=list(s.input_modes),
                output_modes=list(s.output_modes),
            )
            for s in card.skills
        ],
    )
