"""Typed configuration of the model client.

A plain pydantic model, not settings: `actorchestra.settings` reads the environment
(`ACTORCHESTRA_LLM_*`) and builds one of these, and tests build it directly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_BASE_URL = "http://127.0.0.1:8099/v1"
DEFAULT_MODEL = "actorchestra-offline"
DEFAULT_EMBEDDING_MODEL = "actorchestra-offline-embed"
# The offline server needs no key, but the `openai` client refuses to start without one.
PLACEHOLDER_API_KEY = "offline-no-key"


class ModelPrice(BaseModel):
    """What a model costs, in US dollars per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)


class LLMConfig(BaseModel):
    """Where the model is, which one to use, and how hard to try.

    Retries: up to `max_retries` more attempts after the first, on 408/409/429, 5xx,
    timeouts and connection errors. Each waits `Retry-After` when the server sends it
    (up to `retry_after_max_s`; a longer ask fails at once), otherwise
    `backoff_initial_s * 2**n`, capped at `backoff_max_s`, with up to 25% jitter.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = DEFAULT_BASE_URL
    api_key: SecretStr | None = None
    organization: str | None = None
    model: str = DEFAULT_MODEL
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    agent_models: dict[str, str] = Field(
        default_factory=dict, description="per-agent model overrides: agent name -> model"
    )
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    retry_after_max_s: float = Field(default=60.0, ge=0)
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="model -> price; models not listed cost 0"
    )

    def model_for(self, agent: str | None = None) -> str:
        """The model an agent uses: its override, else the default."""
        if agent is not None and agent in self.agent_models:
            return self.agent_models[agent]
        return self.model

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """US dollars for a call; 0.0 for a model missing from the price table."""
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m) / 1e6

    def backoff_s(self, attempt: int, jitter: float) -> float:
        """The wait before retry number `attempt` (1-based), `jitter` in [0, 1)."""
        base = min(self.backoff_initial_s * 2 ** (attempt - 1), self.backoff_max_s)
        return base * (1 - 0.25 * jitter)
