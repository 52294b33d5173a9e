"""The one settings module: environment variables (`ACTORCHESTRA_*`) and `.env`.

Components never read the environment themselves; they take the typed config
objects this module builds (`runtime_options`, with the LLM and tools sections in it).
Secrets (`ACTORCHESTRA_LLM_API_KEY`) stay `SecretStr` all the way to the client, so a
logged or printed config shows `**********`.

Two sides read it: `Settings`, the runtime's (what `actorchestra up` deploys), and
`ClientSettings`, a caller's of the HTTP API (`actorchestra.client.Client` and the CLI
commands `run`, `agents`, `status`):

- `ACTORCHESTRA_TOKEN`: the bearer token a caller sends (`Authorization: Bearer
  <token>`) to a runtime that has `ACTORCHESTRA_AUTH_TOKENS`; one of those tokens.
  `Client(token=...)` and the CLI's `--token` take precedence over it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from actorchestra.actors.llm.config import DEFAULT_EMBEDDING_MODEL, DEFAULT_MODEL, ModelPrice
from actorchestra.actors.spec import HEAP_RESERVE_MIB

# The offline model server's port when `up` starts it; the default LLMConfig.base_url
# (http://127.0.0.1:8099/v1) points there too.
DEFAULT_OFFLINE_LLM_PORT = 8099


class Settings(BaseSettings):
    """Everything configurable outside the runtime config file."""

    model_config = SettingsConfigDict(
        env_prefix="ACTORCHESTRA_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        # Errors name the variable and the problem, never the value: some hold tokens.
        hide_input_in_errors=True,
    )

    config: Path | None = Field(
        default=None, description="the Serve config file; default: the packaged example"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None, description="URL callers use to reach the ingress; default http://host:port"
    )
    namespace: str = "actorchestra"
    ray_address: str | None = Field(
        default=None, description="Ray cluster to join; unset: a reachable local one or a new one"
    )
    ray_port: int = 6380
    dashboard_port: int = 8265
    num_cpus: int | None = None
    serve_mode: Literal["throughput", "standard"] = Field(
        default="throughput",
        description="throughput: Serve's throughput-optimized mode with HAProxy; standard: "
        "Serve's default proxy",
    )
    max_body_bytes: int = 1_048_576
    health_interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    max_tasks_per_replica: int = 10_000
    agent_heap_reserve_mib: int = Field(
        default=HEAP_RESERVE_MIB,
        ge=0,
        le=1024,
        description="MiB of heap each agent replica touches at start-up and keeps (a "
        "first large batch runs without page faults); 0 for the least memory",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated hosts that push webhooks and http tools may reach even "
        "though private or loopback",
    )
    state_dir: Path = Path(".actorchestra")
    auth_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="`user=token,user=token` (or a JSON object): callers are who their "
        "`Authorization: Bearer <token>` says; unset, the runtime has no auth",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="key that signs the chat session ids issued without auth; unset, a "
        "random one kept in the state dir",
    )
    up_timeout_s: float = 120.0

    # -- the LLM endpoint (runtime.agent.llm) --------------------------------------------
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint (ending in /v1); unset: `up` starts the "
        "offline model server",
    )
    llm_api_key: SecretStr | None = None
    llm_organization: str | None = None
    llm_model: str = DEFAULT_MODEL
    llm_embedding_model: str = DEFAULT_EMBEDDING_MODEL
    llm_agent_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="per-agent models: `agent=model,agent=model` (or a JSON object)",
    )
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=20)
    llm_prices: Annotated[dict[str, ModelPrice], NoDecode] = Field(
        default_factory=dict,
        description='JSON: {"model": {"input_per_1m": 2.5, "output_per_1m": 10}}, US dollars',
    )
    llm_offline_port: int = Field(
        default=DEFAULT_OFFLINE_LLM_PORT,
        ge=0,
        le=65535,
        description="port of the offline model server `up` starts when no endpoint is set",
    )

    # -- the built-in tools (runtime.agent.tools); allowed_hosts above feeds them too ------
    tool_timeout_s: float = Field(default=30.0, gt=0)
    http_tool_timeout_s: float = Field(default=15.0, gt=0)
    python_tool_wall_s: float = Field(default=10.0, gt=0)
    python_tool_memory_mb: int = Field(default=256, ge=32)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [h.strip() for h in v.split(",") if h.strip()]
        return v

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _auth_tokens(cls, v: Any) -> Any:
        """`ana=<token>, bob=<token>`; a JSON object is accepted as well."""
        if not isinstance(v, str):
            return v
        text = v.strip()
        if text.startswith("{"):
            return _json_object(text, "ACTORCHESTRA_AUTH_TOKENS")
        pairs: dict[str, str] = {}
        for item in filter(None, (i.strip() for i in text.split(","))):
            user, sep, token = (p.strip() for p in item.partition("="))
            if not sep or not user or not token:
                # the item may hold a token: name its position, not its text
                raise ValueError(
                    f"ACTORCHESTRA_AUTH_TOKENS: item {len(pairs) + 1} is not `user=token` "
                    "(pairs are separated by commas)"
                )
            pairs[user] = token
        return pairs

    @field_validator("session_secret", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("llm_base_url", "llm_api_key", "llm_organization", mode="before")
    @classmethod
    def _blank_is_unset(cls, v: Any) -> Any:
        """`ACTORCHESTRA_LLM_BASE_URL=` (as `.env` templates write it) means not set."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("llm_agent_models", mode="before")
    @classmethod
    def _agent_models(cls, v: Any) -> Any:
        """`writer=gpt-4o-mini, coder=qwen2.5-coder`; a JSON object is accepted as well."""
        if not isinstance(v, str):
            return v
        text = v.strip()
        if text.startswith("{"):
            return _json_object(text, "ACTORCHESTRA_LLM_AGENT_MODELS")
        pairs: dict[str, str] = {}
        for item in filter(None, (i.strip() for i in text.split(","))):
            agent, sep, model = (p.strip() for p in item.partition("="))
            if not sep or not agent or not model:
                raise ValueError(
                    f"ACTORCHESTRA_LLM_AGENT_MODELS: {item!r} is not `agent=model` "
                    "(pairs are separated by commas)"
                )
            pairs[agent] = model
        return pairs

    @field_validator("llm_prices", mode="before")
    @classmethod
    def _prices(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        if not v.strip():
            return {}
        raw = _json_object(v, "ACTORCHESTRA_LLM_PRICES")
        try:
            return {model: ModelPrice.model_validate(p) for model, p in raw.items()}
        except ValidationError as e:
            raise ValueError(
                "ACTORCHESTRA_LLM_PRICES: each model needs "
                f'{{"input_per_1m": <usd>, "output_per_1m": <usd>}}: {e}'
            ) from None

    @property
    def ingress_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def runtime_options(self) -> dict[str, Any]:
        """The `runtime` application args these settings imply (see serve_apps.config)."""
        return {
            "namespace": self.namespace,
            # absolute: the planner actor's working directory is Ray's, not ours
            "data_dir": str(self.state_dir.resolve()),
            "public_url": self.ingress_url,
            "max_body_bytes": self.max_body_bytes,
            "health_interval_s": self.health_interval_s,
            "probe_timeout_s": self.probe_timeout_s,
            **self.auth_options(),
            "agent": {
                "max_tasks": self.max_tasks_per_replica,
                "heap_reserve_mib": self.agent_heap_reserve_mib,
                "push_allowed_hosts": list(self.allowed_hosts),
                "llm": self.llm_options(),
                "tools": self.tools_options(),
            },
        }

    def auth_options(self) -> dict[str, Any]:
        """`runtime.auth_tokens` and `runtime.session_secret`, when set; secrets stay SecretStr."""
        options: dict[str, Any] = {}
        if self.auth_tokens:
            options["auth_tokens"] = dict(self.auth_tokens)
        if self.session_secret is not None:
            options["session_secret"] = self.session_secret
        return options

    def llm_options(self) -> dict[str, Any]:
        """The `runtime.agent.llm` section (an `LLMConfig`); the API key stays a SecretStr.

        `base_url` is left out when unset: that is how `up` knows to start the offline
        model server (unless the config file names an endpoint).
        """
        options: dict[str, Any] = {
            "model": self.llm_model,
            "embedding_model": self.llm_embedding_model,
            "agent_models": dict(self.llm_agent_models),
            "timeout_s": self.llm_timeout_s,
            "max_retries": self.llm_max_retries,
            "prices": {m: p.model_dump() for m, p in self.llm_prices.items()},
        }
        if self.llm_base_url is not None:
            options["base_url"] = self.llm_base_url
        if self.llm_api_key is not None:
            options["api_key"] = self.llm_api_key
        if self.llm_organization is not None:
            options["organization"] = self.llm_organization
        return options

    def tools_options(self) -> dict[str, Any]:
        """The `runtime.agent.tools` section (a `ToolsConfig`)."""
        return {
            "allowed_hosts": list(self.allowed_hosts),
            "call_timeout_s": self.tool_timeout_s,
            "http_timeout_s": self.http_tool_timeout_s,
            "python_wall_s": self.python_tool_wall_s,
            "python_memory_mb": self.python_tool_memory_mb,
        }

    def serve_env(self) -> dict[str, str]:
        """Environment for the Ray processes that run Serve."""
        if self.serve_mode == "throughput":
            return {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}
        return {}


class ClientSettings(BaseSettings):
    """What a caller of the runtime's HTTP API reads from the environment.

    Apart from `Settings`, so that a client is not refused over a runtime variable it
    does not use.
    """

    model_config = SettingsConfigDict(
        env_prefix="ACTORCHESTRA_",
        env_file=".env",
        extra="ignore",
        hide_input_in_errors=True,
    )

    token: SecretStr | None = Field(
        default=None,
        description="bearer token sent to a runtime with auth: one of its "
        "ACTORCHESTRA_AUTH_TOKENS; unset, requests carry no token",
    )

    @field_validator("token", mode="before")
    @classmethod
    def _stripped(cls, v: Any) -> Any:
        """Blank (`ACTORCHESTRA_TOKEN=`, as `.env` templates write it) means no token."""
        return (v.strip() or None) if isinstance(v, str) else v


def _json_object(text: str, variable: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{variable} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{variable} must be a JSON object")
    return value
