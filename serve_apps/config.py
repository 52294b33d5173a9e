"""The runtime config: the application args of the Serve config file, typed."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from actorchestra.actors.spec import AgentRuntimeOptions, AgentSpec

RESERVED_AGENT_NAMES = {"orchestrator"}


class RuntimeOptions(BaseModel):
    """Everything but the agents; `actorchestra up` fills these from the settings."""

    namespace: str = "actorchestra"
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="where callers reach the ingress; agent cards advertise URLs under it",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    health_interval_s: float = Field(default=1.0, gt=0)
    probe_timeout_s: float = Field(default=2.0, gt=0)
    card_cache_control: str = "public, max-age=60"
    llm_offline: bool = Field(
        default=False,
        description="agent.llm.base_url is the offline model server `up` started (for /health)",
    )
    auth_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="user -> bearer token; set, callers are who their token says (see "
        "serve_apps.identity); empty, the runtime has no auth",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of the chat session ids issued without auth; unset, a key "
        "kept in data_dir",
    )
    agent: AgentRuntimeOptions = Field(default_factory=AgentRuntimeOptions)
    data_dir: str = Field(
        default=".actorchestra", description="where the planner keeps task history (DuckDB)"
    )
    subtask_timeout_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)

    @field_validator("auth_tokens")
    @classmethod
    def _strong_tokens(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        seen: set[str] = set()
        for user, token in v.items():
            secret = token.get_secret_value()
            if not user.strip():
                raise ValueError("auth_tokens: a token needs a user name")
            if len(secret) < 16:
                raise ValueError(
                    f"auth_tokens: the token of {user!r} is shorter than 16 characters "
                    "(make one with `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
                )
            if secret in seen:
                raise ValueError(f"auth_tokens: the token of {user!r} is another user's too")
            seen.add(secret)
        return v


class AppConfig(BaseModel):
    """Application args: the agents to run and the runtime options."""

    agents: list[AgentSpec] = Field(min_length=1)
    runtime: RuntimeOptions = Field(default_factory=RuntimeOptions)

    @model_validator(mode="after")
    def _unique_names(self) -> AppConfig:
        seen: set[str] = set()
        for spec in self.agents:
            if spec.name in seen:
                raise ValueError(f"agent name {spec.name!r} appears twice in the config")
            if spec.name in RESERVED_AGENT_NAMES:
                raise ValueError(f"agent name {spec.name!r} is reserved by the runtime")
            seen.add(spec.name)
        return self

    def agent_base_url(self, name: str) -> str:
        return f"{self.runtime.public_url.rstrip('/')}/a2a/{name}"
