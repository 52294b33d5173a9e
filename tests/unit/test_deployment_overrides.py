"""The config file's `deployments:` overrides (Serve's format), as `up` applies them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from actorchestra import cli
from actorchestra.protocol.errors import ConfigError
from actorchestra.serve_apps.builder import INGRESS, build_runtime, ingress_options

ARGS: dict[str, Any] = {
    "agents": [{"name": "echo", "cls": "actorchestra.actors.examples:EchoAgent"}],
}


def test_no_overrides_one_replica() -> None:
    assert ingress_options(None) == {} == ingress_options([])
    deployment = build_runtime(ARGS)._bound_deployment
    assert deployment.name == INGRESS
    assert deployment.num_replicas == 1
    assert deployment.max_ongoing_requests == 1000


def test_num_replicas_and_other_serve_options_apply() -> None:
    app = build_runtime(
        ARGS,
        [{"name": "ingress", "num_replicas": 3, "graceful_shutdown_timeout_s": 7}],
    )
    deployment = app._bound_deployment
    assert deployment.num_replicas == 3
    assert deployment._deployment_config.graceful_shutdown_timeout_s == 7
    assert deployment.max_ongoing_requests == 1000, "what the file does not set stays"


def test_actor_options_are_laid_over_the_runtimes_own() -> None:
    given = {"num_cpus": 0.5, "runtime_env": {"env_vars": {"EXTRA": "1"}}}
    deployment = build_runtime(
        ARGS, [{"name": "ingress", "ray_actor_options": given}]
    )._bound_deployment
    options = deployment.ray_actor_options
    assert options["num_cpus"] == 0.5
    env = options["runtime_env"]["env_vars"]
    assert env["EXTRA"] == "1"
    # the agents' own environment is still there
    assert env["OTEL_INSTRUMENTATION_A2A_SDK_ENABLED"] == "false"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([{"name": "planner", "num_replicas": 2}], "no deployment named 'planner'"),
        ([{"num_replicas": 2}], "no deployment named None"),
        ([{"name": "ingress", "num_replica": 2}], "num_replica"),
        ([{"name": "ingress", "rolling_update_percentage": 50}], "rolling_update_percentage"),
        ([{"name": "ingress", "num_replicas": 0}], "num_replicas"),
        (["ingress"], "each entry is a mapping"),
    ],
)
def test_bad_overrides_are_config_errors(overrides: list[Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ingress_options(overrides)


def test_up_refuses_bad_overrides_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "applications": [
            {
                "name": "actorchestra",
                "import_path": cli.BUILDER,
                "args": ARGS,
                "deployments": [{"name": "ingres", "num_replicas": 2}],
            }
        ]
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("ACTORCHESTRA_STATE_DIR", str(tmp_path / "state"))
    # unit tests refuse ray.init: reaching it would fail differently
    with pytest.raises(SystemExit, match="no deployment named 'ingres'"):
        cli.main(["up", "--config", str(path)])
    assert not (tmp_path / "state").exists()


def test_the_packaged_config_documents_the_override() -> None:
    text = cli.default_config_path().read_text()
    assert "deployments:" in text and "num_replicas" in text
    # as shipped: no override, one ingress replica
    for app in cli.load_config(cli.default_config_path())["applications"]:
        ingress_options(app.get("deployments"))
