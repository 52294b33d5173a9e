"""The Serve application builder: `import_path` of the runtime config file."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from ray import serve
from ray.serve import Application
from ray.serve.schema import DeploymentSchema

from actorchestra.protocol.errors import ConfigError
from actorchestra.serve_apps.config import AppConfig
from actorchestra.serve_apps.ingress import Ingress

# The runtime's one Serve deployment: the HTTP front door. It keeps no task state (tasks
# live in the agent actors), so any of its replicas serves any task.
INGRESS = "ingress"

# DeploymentSchema fields that `Deployment.options` has no parameter for.
_NOT_OPTIONS = {"name", "rolling_update_percentage"}


def build_app(args: dict[str, Any]) -> Application:
    """Typed Serve app builder: `args` are the application args of the config file.

    Serve calls builders with the args alone; `serve deploy` applies the file's
    `deployments:` overrides itself, `actorchestra up` through `build_runtime`.
    """
    return build_runtime(args)


def build_runtime(
    args: dict[str, Any], deployments: list[dict[str, Any]] | None = None
) -> Application:
    """The runtime application; `deployments` is the config file's `deployments:` list.

    That list is Serve's per-deployment override format (`[{name: ingress, num_replicas:
    2}]`), applied here the way `serve deploy` would, except that `ray_actor_options` are
    laid over the runtime's own rather than replacing them: the replicas need the agents'
    environment (the LLM key among it) whatever else the file sets.
    """
    config = AppConfig.model_validate(args)
    own_actor_options: dict[str, Any] = {
        "num_cpus": 0,
        "runtime_env": {"env_vars": config.runtime.agent.process_env()},
    }
    options = ingress_options(deployments)
    actor_options = _merge_actor_options(own_actor_options, options.pop("ray_actor_options", {}))
    deployment = serve.deployment(
        Ingress,
        name=INGRESS,
        ray_actor_options=actor_options,
        max_ongoing_requests=1000,
        # One log line per request costs more than forwarding an echo request does.
        logging_config={"enable_access_log": False},
    )
    if options:
        deployment = deployment.options(**options)
    # Python mode, not JSON: JSON mode writes SecretStr values (the LLM API key) as
    # "**********", and the replicas would get the mask instead of the key.
    return deployment.bind(config.model_dump())


def ingress_options(deployments: list[dict[str, Any]] | None) -> dict[str, Any]:
    """`Deployment.options` keyword arguments from a `deployments:` list, checked.

    Raises ConfigError for a deployment other than `ingress`, an unknown key or a value
    Serve's own schema refuses, so a typo fails before anything is started.
    """
    options: dict[str, Any] = {}
    for raw in deployments or []:
        if not isinstance(raw, dict):
            raise ConfigError(f"deployments: each entry is a mapping, not {raw!r}")
        name = raw.get("name")
        if name != INGRESS:
            raise ConfigError(
                f"deployments: no deployment named {name!r}; the runtime has one, {INGRESS!r}"
            )
        unknown = sorted(raw.keys() - DeploymentSchema.model_fields.keys())
        unsupported = sorted(raw.keys() & (_NOT_OPTIONS - {"name"}))
        if unknown or unsupported:
            raise ConfigError(
                f"deployments: {INGRESS!r} has options Serve does not know or "
                f"`actorchestra up` cannot apply: {', '.join(unknown + unsupported)}"
            )
        try:
            schema = DeploymentSchema.model_validate(raw)
        except ValidationError as e:
            raise ConfigError(f"deployments: {INGRESS!r}: {e}") from None
        options.update(schema.model_dump(exclude_unset=True, exclude=_NOT_OPTIONS))
    return options


def _merge_actor_options(own: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = {**own, **given}
    own_env = own.get("runtime_env") or {}
    given_env = given.get("runtime_env") or {}
    merged["runtime_env"] = {
        **own_env,
        **given_env,
        "env_vars": {**own_env.get("env_vars", {}), **given_env.get("env_vars", {})},
    }
    return merged
