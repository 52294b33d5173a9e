"""The Serve application builder: `import_path` of the runtime config file."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from actorchestra.serve_apps.config import AppConfig
from actorchestra.serve_apps.ingress import Ingress


def build_app(args: dict[str, Any]) -> Application:
    """Typed Serve app builder: `args` are the application args of the config file."""
    config = AppConfig.model_validate(args)
    deployment = serve.deployment(
        Ingress,
        name="ingress",
        ray_actor_options={
            "num_cpus": 0,
            "runtime_env": {"env_vars": config.runtime.agent.process_env()},
        },
        max_ongoing_requests=1000,
        # One log line per request costs more than forwarding an echo request does.
        logging_config={"enable_access_log": False},
    )
    # Python mode, not JSON: JSON mode writes SecretStr values (the LLM API key) as
    # "**********", and the replicas would get the mask instead of the key.
    return deployment.bind(config.model_dump())
