"""Typed configuration of agent actors, as it appears in the runtime config file."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from actorchestra.actors.agent import Agent
from actorchestra.actors.llm.config import LLMConfig
from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.protocol.errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
HEAP_RESERVE_MIB = 8  # small-object heap an actor process touches at start-up (actors.runtime)


class AgentSpec(BaseModel):
    """One agent in the config: which class, under what name, how many replicas."""

    name: str
    cls: str = Field(description="import path of the Agent subclass, `package.module:Class`")
    replicas: int = Field(default=1, ge=1, le=64)
    description: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    concurrency: int | None = Field(
        default=None,
        ge=1,
        description="skills one replica runs at once (batch items included); unset: no limit",
    )
    max_concurrency: int = Field(
        default=1000, ge=1, description="requests one replica runs at once"
    )
    num_cpus: float = Field(default=0, ge=0)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"agent name {v!r} must be lower-case letters, digits, '-' or '_', "
                "starting with a letter (it becomes a URL path segment)"
            )
        return v

    def load_class(self) -> type[Agent]:
        module_name, _, attr = self.cls.partition(":")
        if not module_name or not attr:
            raise ConfigError(
                f"agent {self.name!r}: cls {self.cls!r} must look like 'module:Class'"
            )
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"agent {self.name!r}: cannot import {self.cls!r}: {e}") from e
        if not (isinstance(obj, type) and issubclass(obj, Agent)):
            raise ConfigError(f"agent {self.name!r}: {self.cls!r} is not an Agent subclass")
        return obj


class AgentRuntimeOptions(BaseModel):
    """Runtime limits every agent actor shares."""

    max_tasks: int = Field(default=10_000, ge=10, description="tasks kept in memory per replica")
    push_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="hosts push webhooks may target even though private or loopback",
    )
    push_timeout_s: float = 10.0
    conversation_tasks: int = Field(
        default=50, ge=0, description="earlier tasks of a context a skill sees as conversation"
    )
    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        description="the model server LLM agents call (settings fill it from ACTORCHESTRA_LLM_*)",
    )
    tools: ToolsConfig = Field(
        default_factory=ToolsConfig, description="limits of the built-in tools LLM agents call"
    )
    a2a_tracing: bool = Field(
        default=False,
        description="a2a-sdk's OpenTelemetry spans (about 100 per request); off unless traced",
    )
    heap_reserve_mib: int = Field(
        default=HEAP_RESERVE_MIB,
        ge=0,
        le=1024,
        description="small-object heap each replica touches at start-up and keeps, so its "
        "first large batch does not page-fault through new arenas "
        "(actors.runtime.reserve_small_object_heap); 0: none, for the least memory",
    )

    def process_env(self) -> dict[str, str]:
        """Environment for processes that run a2a-sdk code; read by a2a-sdk at import."""
        return {"OTEL_INSTRUMENTATION_A2A_SDK_ENABLED": "true" if self.a2a_tracing else "false"}

    def agent_process_env(self) -> dict[str, str]:
        """Environment of an agent actor's own process (see `actors.agent_actor`)."""
        env = {**self.process_env(), AGENT_PROCESS_ENV: "1"}
        if RAY_SETUP_HOOK_ENV not in os.environ:
            # Ray runs it before the actor exists (`actors.worker_setup` says why); a
            # job-level hook of the user's, inherited, is left to run instead.
            env[RAY_SETUP_HOOK_ENV] = AGENT_SETUP_HOOK
        return env


# Where Ray's worker reads its `worker_process_setup_hook`; Ray sets it from a job-level
# runtime_env only, so an actor's own env_vars name it (ray._private.ray_constants).
RAY_SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"
AGENT_SETUP_HOOK = "actorchestra.actors.worker_setup.setup"

# Set in agent actor processes only: they serve A2A over the direct channel, never gRPC.
AGENT_PROCESS_ENV = "ACTORCHESTRA_AGENT_PROCESS"


def config_revision(spec: AgentSpec, base_url: str, options: AgentRuntimeOptions) -> str:
    """What one replica of `spec` runs with, as a short digest.

    A deploy replaces the running replicas whose revision differs from its own: the
    class, its options, the limits, the card's description or URL, or the runtime
    options (LLM, tools, tracing) changed. The replica count is left out: adding or
    removing replicas leaves the others as they are.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):  # a new API key is a new revision too
            return value.get_secret_value()
        return str(value)  # a date from YAML, say

    doc = [spec.model_dump(exclude={"replicas"}), base_url, options.model_dump()]
    text = json.dumps(doc, sort_keys=True, default=plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def actor_name(agent: str, replica: int) -> str:
    """The Ray actor name: shown in the dashboard as `agent:<name>:<replica>`."""
    return f"agent:{agent}:{replica}"


def parse_actor_name(name: str) -> tuple[str, int] | None:
    """(agent, replica) of an `actor_name`; None for any other actor's name."""
    parts = name.split(":")
    if len(parts) == 3 and parts[0] == "agent" and parts[2].isdigit():
        return parts[1], int(parts[2])
    return None
