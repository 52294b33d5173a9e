"""The options of an LLM agent, as the config file writes them, checked when it is built.

A mistake in a config (an unknown role or tool, a misspelt option, an output schema
that is not JSON Schema) raises `ConfigError` when the agent is constructed, which is
when the runtime starts it, rather than on the first request.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actorchestra.actors.roles import DEFAULT_SKILL, Role
from actorchestra.protocol.cards import SkillInfo
from actorchestra.protocol.errors import ConfigError

BUILTIN_TOOLS = ("calculator", "http_get", "python")
AGENT_TOOL_PREFIX = "agent:"
_AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class LLMSkillOptions(BaseModel):
    """One skill as the config writes it; `output_schema` makes its answer JSON data."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    name: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)
    instructions: str | None = Field(
        default=None, description="added to the system prompt when this skill answers"
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema the answer must match (a data artifact)"
    )

    def info(self) -> SkillInfo:
        return SkillInfo(
            id=self.id,
            name=self.name or self.id.replace("_", " "),
            description=self.description,
            tags=self.tags or [self.id],  # A2A cards require tags
            examples=self.examples,
            output_modes=["application/json"] if self.output_schema else [],
        )


class LLMAgentOptions(BaseModel):
    """The `options` of an LLM agent in the config file."""

    model_config = ConfigDict(extra="forbid")

    role: str | None = None
    system_prompt: str | None = None
    model: str | None = None
    skills: list[LLMSkillOptions] | None = None
    tools: list[str] | None = Field(
        default=None, description="built-in tool names and `agent:<name>`; default: the role's"
    )
    memory: bool = True
    max_context_tokens: int = Field(
        default=4000, ge=0, description="token budget for earlier turns of the conversation"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_tool_rounds: int = Field(default=5, ge=0, le=20)
    stream_chunk_chars: int = Field(default=64, ge=1, description="flush a chunk this long")
    stream_flush_ms: float = Field(
        default=30.0, ge=0, description="or this long after the previous flush"
    )

    @classmethod
    def parse(cls, options: dict[str, Any]) -> LLMAgentOptions:
        """The options, checked; ConfigError listing every problem otherwise."""
        try:
            return cls.model_validate(options)
        except ValidationError as errors:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}"
                for e in errors.errors()
            )
            raise ConfigError(f"LLM agent options: {problems}") from None


def resolve_skills(config: LLMAgentOptions, role: Role | None) -> dict[str, LLMSkillOptions]:
    """The skills the card shows: the options', else the role's, else one `chat` skill."""
    if config.skills is not None:
        skills = config.skills
    else:
        presets = role.skills if role is not None else (DEFAULT_SKILL,)
        skills = [
            LLMSkillOptions(
                id=s.id,
                name=s.name,
                description=s.description,
                tags=s.tags,
                examples=s.examples,
            )
            for s in presets
        ]
    if not skills:
        raise ConfigError("LLM agent options: skills: an agent needs at least one skill")
    out: dict[str, LLMSkillOptions] = {}
    for s in skills:
        if s.id in out:
            raise ConfigError(f"LLM agent options: skill id {s.id!r} appears twice")
        if s.output_schema is not None:
            try:
                jsonschema.validators.validator_for(s.output_schema).check_schema(s.output_schema)
            except jsonschema.SchemaError as e:
                raise ConfigError(
                    f"LLM agent options: skill {s.id!r}: output_schema is not a valid "
                    f"JSON schema: {e.message}"
                ) from None
        out[s.id] = s
    return out


def resolve_tools(config: LLMAgentOptions, role: Role | None) -> list[str]:
    """The tool names: the options', else the role's defaults; each one checked."""
    if config.tools is not None:
        names = list(config.tools)
    else:
        names = list(role.tools) if role is not None else []
    for n in names:
        target = n.removeprefix(AGENT_TOOL_PREFIX)
        if n.startswith(AGENT_TOOL_PREFIX) and _AGENT_NAME.match(target):
            continue
        if n not in BUILTIN_TOOLS:
            raise ConfigError(
                f"LLM agent options: unknown tool {n!r}; use one of "
                f"{', '.join(BUILTIN_TOOLS)} or 'agent:<agent name>'"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"LLM agent options: tools list a name twice: {names}")
    return list(names)
