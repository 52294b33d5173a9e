"""The one settings module: environment variables (`ACTORCHESTRA_*`) and `.env`.

Components never read the environment themselves; they take the typed config
objects this module builds (`runtime_options`, and later the LLM and store configs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable outside the runtime config file."""

    model_config = SettingsConfigDict(
        env_prefix="ACTORCHESTRA_", env_file=".env", extra="ignore", populate_by_name=True
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
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated hosts that push webhooks and http tools may reach even "
        "though private or loopback",
    )
    state_dir: Path = Path(".actorchestra")
    up_timeout_s: float = 120.0

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [h.strip() for h in v.split(",") if h.strip()]
        return v

    @property
    def ingress_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def runtime_options(self) -> dict[str, Any]:
        """The `runtime` application args these settings imply (see serve_apps.config)."""
        return {
            "namespace": self.namespace,
            "public_url": self.ingress_url,
            "max_body_bytes": self.max_body_bytes,
            "health_interval_s": self.health_interval_s,
            "probe_timeout_s": self.probe_timeout_s,
            "agent": {
                "max_tasks": self.max_tasks_per_replica,
                "push_allowed_hosts": list(self.allowed_hosts),
            },
        }

    def serve_env(self) -> dict[str, str]:
        """Environment for the Ray processes that run Serve."""
        if self.serve_mode == "throughput":
            return {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}
        return {}
