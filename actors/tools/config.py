"""Typed limits for the tool layer.

A plain pydantic model: the settings module reads the environment (including
`ACTORCHESTRA_ALLOWED_HOSTS`) and hands a filled `ToolsConfig` to whoever builds the
tools. Nothing here looks at `os.environ`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Modules the python tool imports before it drops privileges. When the interpreter lives
# somewhere the unprivileged user cannot read (pyenv under /root, say), these are the only
# stdlib modules user code can still import; elsewhere preloading only costs a few ms.
DEFAULT_PRELOAD: tuple[str, ...] = (
    "math",
    "cmath",
    "json",
    "re",
    "statistics",
    "fractions",
    "decimal",
    "random",
    "datetime",
    "itertools",
    "functools",
    "collections",
    "operator",
    "string",
    "textwrap",
    "heapq",
    "bisect",
    "csv",
    "io",
    "dataclasses",
    "typing",
    "enum",
    "calendar",
    "hashlib",
    "base64",
    "unicodedata",
    "difflib",
    "pprint",
    "copy",
    "time",
    "array",
    "struct",
    "numbers",
    "threading",
    "secrets",
    "zlib",
    "encodings.idna",  # so a refused connect says "refused", not "unknown encoding"
)


class ToolsConfig(BaseModel):
    """Limits and allowances for the registry and the built-in tools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # registry
    call_timeout_s: float = Field(
        default=30.0, gt=0, description="default per-call timeout for tools that set none"
    )
    max_recent_calls: int = Field(
        default=200, ge=1, le=100_000, description="call records kept in memory"
    )

    # http_get
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "hosts http_get may reach even if they resolve to private, loopback or "
            "link-local addresses: `name`, `name:port`, an IP address or a CIDR network"
        ),
    )
    http_max_bytes: int = Field(default=1_000_000, ge=1, description="body bytes kept")
    http_timeout_s: float = Field(default=15.0, gt=0, description="whole fetch, redirects included")
    http_max_redirects: int = Field(default=5, ge=0, le=20)
    http_user_agent: str = "actorchestra-http-get/0.1"

    # python
    python_cpu_s: int = Field(default=5, ge=1, description="RLIMIT_CPU of the child")
    python_memory_mb: int = Field(default=256, ge=32, description="RLIMIT_AS of the child")
    python_wall_s: float = Field(default=10.0, gt=0, description="then the group is killed")
    python_output_max_bytes: int = Field(default=64_000, ge=1, description="per stream")
    python_file_size_mb: int = Field(default=16, ge=0, description="RLIMIT_FSIZE of the child")
    python_drop_privileges: bool = Field(
        default=True, description="when running as root, run user code as `nobody`"
    )
    python_max_concurrent: int = Field(default=2, ge=1, description="children at once")
    python_preload: tuple[str, ...] = DEFAULT_PRELOAD

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        """Accept the raw comma-separated env form too; normalise case and whitespace."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return [str(v).strip().lower() for v in value if str(v).strip()]
        return value
