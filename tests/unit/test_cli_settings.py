"""Settings from the environment, the CLI's config handling, and the typed runtime config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from actorchestra import cli, local_ray
from actorchestra.actors.examples import EchoAgent
from actorchestra.actors.spec import AgentRuntimeOptions, AgentSpec, actor_name
from actorchestra.protocol.errors import ConfigError
from actorchestra.serve_apps.config import AppConfig
from actorchestra.settings import Settings

pytestmark = pytest.mark.usefixtures("clean_env")


# -- Settings -----------------------------------------------------------------------------


def test_defaults() -> None:
    s = Settings()
    assert s.ingress_url == "http://127.0.0.1:8000"
    assert s.allowed_hosts == []
    assert s.serve_mode == "throughput"
    assert s.model_fields_set == set()


@pytest.mark.parametrize(
    ("raw", "hosts"),
    [
        ("hooks.internal", ["hooks.internal"]),
        ("a.test, b.test ,,c.test,", ["a.test", "b.test", "c.test"]),
        ("", []),
    ],
)
def test_allowed_hosts_is_a_comma_list(
    monkeypatch: pytest.MonkeyPatch, raw: str, hosts: list[str]
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_ALLOWED_HOSTS", raw)
    s = Settings()
    assert s.allowed_hosts == hosts
    assert s.runtime_options()["agent"]["push_allowed_hosts"] == hosts


def test_ingress_url_from_host_and_port_or_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_HOST", "0.0.0.0")
    monkeypatch.setenv("ACTORCHESTRA_PORT", "9100")
    assert Settings().ingress_url == "http://0.0.0.0:9100"
    monkeypatch.setenv("ACTORCHESTRA_PUBLIC_URL", "https://agents.example.com/")
    assert Settings().ingress_url == "https://agents.example.com"


def test_commands_call_the_runtime_where_up_served_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_STATE_DIR", str(tmp_path))
    assert cli.caller_url(Settings()) == "http://127.0.0.1:8000"  # nothing recorded
    state = local_ray.RuntimeState(ray_address="127.0.0.1:6379")
    state.ingress_url = "http://127.0.0.1:9100/rt"
    local_ray.write_state(tmp_path / "runtime.json", state)
    assert cli.caller_url(Settings()) == "http://127.0.0.1:9100/rt"
    # the same address asked for: still under the prefix; another one: that one
    monkeypatch.setenv("ACTORCHESTRA_PORT", "9100")
    assert cli.caller_url(Settings()) == "http://127.0.0.1:9100/rt"
    monkeypatch.setenv("ACTORCHESTRA_PORT", "9200")
    assert cli.caller_url(Settings()) == "http://127.0.0.1:9200"
    monkeypatch.setenv("ACTORCHESTRA_PUBLIC_URL", "https://agents.example.com/x")
    assert cli.caller_url(Settings()) == "https://agents.example.com/x"


def test_settings_read_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ACTORCHESTRA_NAMESPACE=from-dotenv\n")
    assert Settings().namespace == "from-dotenv"


def test_runtime_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_NAMESPACE", "lab")
    monkeypatch.setenv("ACTORCHESTRA_PORT", "8123")
    monkeypatch.setenv("ACTORCHESTRA_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("ACTORCHESTRA_HEALTH_INTERVAL_S", "0.5")
    monkeypatch.setenv("ACTORCHESTRA_PROBE_TIMEOUT_S", "0.25")
    monkeypatch.setenv("ACTORCHESTRA_MAX_TASKS_PER_REPLICA", "50")
    monkeypatch.setenv("ACTORCHESTRA_AGENT_HEAP_RESERVE_MIB", "0")
    monkeypatch.setenv("ACTORCHESTRA_ALLOWED_HOSTS", "localhost")
    monkeypatch.setenv("ACTORCHESTRA_STATE_DIR", "/srv/actorchestra")
    options = Settings().runtime_options()
    llm, tools = options["agent"].pop("llm"), options["agent"].pop("tools")  # test_llm_settings
    assert options == {
        "namespace": "lab",
        "data_dir": "/srv/actorchestra",
        "public_url": "http://127.0.0.1:8123",
        "max_body_bytes": 4096,
        "health_interval_s": 0.5,
        "probe_timeout_s": 0.25,
        "agent": {"max_tasks": 50, "push_allowed_hosts": ["localhost"], "heap_reserve_mib": 0},
    }
    assert tools["allowed_hosts"] == ["localhost"] and "base_url" not in llm
    options["agent"].update(llm=llm, tools=tools)
    # What the settings imply is a valid runtime section of the app config.
    config = AppConfig.model_validate(
        {
            "agents": [{"name": "echo", "cls": "actorchestra.actors.examples:EchoAgent"}],
            "runtime": options,
        }
    )
    assert config.runtime.agent.max_tasks == 50
    assert config.agent_base_url("echo") == "http://127.0.0.1:8123/a2a/echo"


def test_serve_env_for_both_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().serve_env() == {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
    }
    monkeypatch.setenv("ACTORCHESTRA_SERVE_MODE", "standard")
    assert Settings().serve_env() == {}


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_SERVE_MODE", "turbo")
    with pytest.raises(ValidationError, match="serve_mode"):
        Settings()
    monkeypatch.setenv("ACTORCHESTRA_SERVE_MODE", "standard")
    monkeypatch.setenv("ACTORCHESTRA_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings()


# -- cli.merged_args: explicit env > config file > defaults --------------------------------


def _app(runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"agents": [{"name": "echo", "cls": "x:Y"}]}
    if runtime is not None:
        args["runtime"] = runtime
    return {"name": "actorchestra", "args": args}


def test_defaults_fill_what_the_file_leaves_out() -> None:
    merged = cli.merged_args(_app(), Settings())
    assert merged["agents"] == [{"name": "echo", "cls": "x:Y"}]
    assert merged["runtime"] == Settings().runtime_options()


def test_the_file_beats_defaults() -> None:
    file_runtime = {
        "namespace": "from-file",
        "public_url": "https://file.example.com",
        "max_body_bytes": 2048,
        "card_cache_control": "no-store",
        "agent": {"max_tasks": 77},
    }
    runtime = cli.merged_args(_app(file_runtime), Settings())["runtime"]
    assert runtime["namespace"] == "from-file"
    assert runtime["public_url"] == "https://file.example.com"
    assert runtime["max_body_bytes"] == 2048
    assert runtime["card_cache_control"] == "no-store"
    assert runtime["agent"]["max_tasks"] == 77 and runtime["agent"]["push_allowed_hosts"] == []
    assert runtime["probe_timeout_s"] == Settings().probe_timeout_s


def test_explicit_env_beats_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_NAMESPACE", "from-env")
    monkeypatch.setenv("ACTORCHESTRA_PUBLIC_URL", "https://env.example.com")
    monkeypatch.setenv("ACTORCHESTRA_MAX_BODY_BYTES", "9999")
    file_runtime = {
        "namespace": "from-file",
        "public_url": "https://file.example.com",
        "max_body_bytes": 2048,
        "health_interval_s": 3.0,
    }
    runtime = cli.merged_args(_app(file_runtime), Settings())["runtime"]
    assert runtime["namespace"] == "from-env"
    assert runtime["public_url"] == "https://env.example.com"
    assert runtime["max_body_bytes"] == 9999
    assert runtime["health_interval_s"] == 3.0  # not set in the env: the file's value


def test_explicit_port_moves_the_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_PORT", "8200")
    app = _app({"public_url": "http://127.0.0.1:8000"})
    assert cli.merged_args(app, Settings())["runtime"]["public_url"] == "http://127.0.0.1:8200"


def test_agent_cards_name_the_apps_route_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve serves the app under its route prefix: a public URL made from the ingress
    address includes it (cards advertise URLs under it); one given is taken as it is."""
    app = {**_app(), "route_prefix": "/agents/"}
    merged = cli.merged_args(app, Settings(), "http://127.0.0.1:8300")
    config = AppConfig.model_validate(merged)
    assert config.runtime.public_url == "http://127.0.0.1:8300/agents"
    assert config.agent_base_url("echo") == "http://127.0.0.1:8300/agents/a2a/echo"
    root = cli.merged_args({**_app(), "route_prefix": "/"}, Settings(), "http://127.0.0.1:8300")
    assert root["runtime"]["public_url"] == "http://127.0.0.1:8300"

    monkeypatch.setenv("ACTORCHESTRA_PORT", "8200")
    assert cli.merged_args(app, Settings())["runtime"]["public_url"] == (
        "http://127.0.0.1:8200/agents"
    )
    given = {**_app({"public_url": "https://agents.example.com"}), "route_prefix": "/agents"}
    monkeypatch.delenv("ACTORCHESTRA_PORT")
    assert cli.merged_args(given, Settings())["runtime"]["public_url"] == (
        "https://agents.example.com"
    )
    monkeypatch.setenv("ACTORCHESTRA_PUBLIC_URL", "https://proxy.example.com/rt")
    assert cli.merged_args(app, Settings())["runtime"]["public_url"] == (
        "https://proxy.example.com/rt"
    )


def test_merged_args_leaves_the_config_untouched() -> None:
    app = _app({"namespace": "from-file", "agent": {"max_tasks": 77}})
    before = yaml.safe_dump(app)
    cli.merged_args(app, Settings())
    assert yaml.safe_dump(app) == before


def test_explicit_env_beats_the_files_agent_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_MAX_TASKS_PER_REPLICA", "50")
    monkeypatch.setenv("ACTORCHESTRA_ALLOWED_HOSTS", "hooks.internal")
    app = _app({"agent": {"max_tasks": 500, "push_allowed_hosts": ["file.internal"]}})
    agent = cli.merged_args(app, Settings())["runtime"]["agent"]
    assert (agent["max_tasks"], agent["push_allowed_hosts"]) == (50, ["hooks.internal"])


def test_the_agents_heap_reserve_from_the_file_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _app({"agent": {"heap_reserve_mib": 2}})
    assert cli.merged_args(app, Settings())["runtime"]["agent"]["heap_reserve_mib"] == 2
    monkeypatch.setenv("ACTORCHESTRA_AGENT_HEAP_RESERVE_MIB", "0")
    assert cli.merged_args(app, Settings())["runtime"]["agent"]["heap_reserve_mib"] == 0
    monkeypatch.setenv("ACTORCHESTRA_AGENT_HEAP_RESERVE_MIB", "-1")
    with pytest.raises(ValidationError, match="agent_heap_reserve_mib"):
        Settings()


ENV_TOKEN = "env-token-0123456789abcdef"
FILE_TOKEN = "file-token-0123456789abcdef"


def _auth(runtime: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """The tokens and session secret the runtime ends up with (after validation)."""
    typed = AppConfig.model_validate(
        {"agents": [{"name": "echo", "cls": ECHO}], "runtime": runtime}
    )
    tokens = {u: t.get_secret_value() for u, t in typed.runtime.auth_tokens.items()}
    secret = typed.runtime.session_secret
    return tokens, secret.get_secret_value() if secret is not None else None


def test_explicit_env_beats_the_files_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    file_runtime = {"auth_tokens": {"file-user": FILE_TOKEN}, "session_secret": "file-secret"}
    # The file alone: its tokens and secret.
    runtime = cli.merged_args(_app(file_runtime), Settings())["runtime"]
    assert _auth(runtime) == ({"file-user": FILE_TOKEN}, "file-secret")
    # Set in the environment: the environment's, whatever the file says.
    monkeypatch.setenv("ACTORCHESTRA_AUTH_TOKENS", f"env-user={ENV_TOKEN}")
    monkeypatch.setenv("ACTORCHESTRA_SESSION_SECRET", "env-secret")
    runtime = cli.merged_args(_app(file_runtime), Settings())["runtime"]
    assert _auth(runtime) == ({"env-user": ENV_TOKEN}, "env-secret")


def test_blank_auth_variables_leave_the_files_auth_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ACTORCHESTRA_AUTH_TOKENS=` (a `.env` template's line) must not switch auth off."""
    monkeypatch.setenv("ACTORCHESTRA_AUTH_TOKENS", "")
    monkeypatch.setenv("ACTORCHESTRA_SESSION_SECRET", " ")
    file_runtime = {"auth_tokens": {"file-user": FILE_TOKEN}, "session_secret": "file-secret"}
    runtime = cli.merged_args(_app(file_runtime), Settings())["runtime"]
    assert _auth(runtime) == ({"file-user": FILE_TOKEN}, "file-secret")
    # Neither here nor there: no auth, and the key kept in the state dir.
    assert _auth(cli.merged_args(_app(), Settings())["runtime"]) == ({}, None)
    assert _auth(cli.merged_args(_app({"session_secret": ""}), Settings())["runtime"])[1] is None


def test_merged_auth_never_shows_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file_runtime = {"auth_tokens": {"file-user": FILE_TOKEN}, "session_secret": "file-secret"}
    from_file = cli.merged_args(_app(file_runtime), Settings())
    monkeypatch.setenv("ACTORCHESTRA_AUTH_TOKENS", f"env-user={ENV_TOKEN}")
    from_env = cli.merged_args(_app(), Settings())
    for merged in (from_file, from_env):
        print(merged)  # what a log line or a traceback's locals would show
        shown = repr(merged) + str(merged)
        assert FILE_TOKEN not in shown and ENV_TOKEN not in shown and "file-secret" not in shown
    assert FILE_TOKEN not in capsys.readouterr().out
    # A short token in the file is refused by name, still without showing it.
    monkeypatch.delenv("ACTORCHESTRA_AUTH_TOKENS")
    with pytest.raises(ValidationError) as info:
        _auth(cli.merged_args(_app({"auth_tokens": {"ana": "short-tok"}}), Settings())["runtime"])
    assert "shorter than 16 characters" in str(info.value) and "short-tok" not in str(info.value)


# -- cli.load_config ----------------------------------------------------------------------


def test_load_config_reads_a_serve_config(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({"applications": [_app()]}))
    assert cli.load_config(path)["applications"][0]["args"]["agents"][0]["name"] == "echo"


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SystemExit) as caught:
        cli.load_config(path)
    assert str(caught.value) == f"config file {path} does not exist"


def test_load_config_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("applications: [\n  - name: x\n    args: {agents: [}\n")
    with pytest.raises(SystemExit) as caught:
        cli.load_config(path)
    assert str(caught.value).startswith(f"config file {path} is not valid YAML:")


@pytest.mark.parametrize(
    "text", ["", "http_options: {port: 8000}\n", "applications: []\n", "- just\n- a list\n"]
)
def test_load_config_without_applications(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit, match=r"has no `applications:` \(the `serve deploy` format\)"):
        cli.load_config(path)


def test_packaged_default_config_is_valid() -> None:
    path = cli.default_config_path()
    assert path.name == "default_config.yaml" and path.exists()
    config = cli.load_config(path)
    (app,) = config["applications"]
    assert app["import_path"] == cli.BUILDER
    typed = AppConfig.model_validate(cli.merged_args(app, Settings()))
    assert [a.name for a in typed.agents] == [
        "echo",
        "text",
        "researcher",
        "writer",
        "coder",
        "reviewer",
    ]
    assert {a.name: a.replicas for a in typed.agents}["text"] == 2
    for spec in typed.agents:
        # every class imports, takes its options and has skills on its card
        info = spec.load_class()(**spec.options).card_info(name=spec.name)
        assert info.skills
    assert typed.runtime.public_url == f"http://{config['http_options']['host']}:" + str(
        config["http_options"]["port"]
    )


# -- cli.build_parser ---------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _subcommands(cli.build_parser())
    assert set(commands) == {"up", "down", "status", "agents", "run"}
    for argv in [["--help"], *([c, "--help"] for c in commands)]:
        with pytest.raises(SystemExit) as caught:
            cli.build_parser().parse_args(argv)
        assert caught.value.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith("usage: actorchestra"), argv
        assert "--port" in out or argv == ["--help"]


def test_parser_arguments() -> None:
    args = cli.build_parser().parse_args(["up", "--config", "my.yaml", "--port", "9000"])
    assert (args.command, args.config, args.port) == ("up", Path("my.yaml"), 9000)
    assert cli.build_parser().parse_args(["agents", "--json"]).json is True


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.build_parser().parse_args([])
    assert caught.value.code == 2
    assert "required" in capsys.readouterr().err


# -- AppConfig and AgentSpec ----------------------------------------------------------------

ECHO = "actorchestra.actors.examples:EchoAgent"


def _config(*agents: dict[str, Any]) -> dict[str, Any]:
    return {"agents": list(agents)}


def test_app_config_defaults() -> None:
    config = AppConfig.model_validate(_config({"name": "echo", "cls": ECHO}))
    assert config.runtime.agent == AgentRuntimeOptions()
    assert config.agents[0].replicas == 1
    assert config.agent_base_url("echo") == "http://127.0.0.1:8000/a2a/echo"


def test_duplicate_agent_names() -> None:
    with pytest.raises(ValidationError, match=r"agent name 'echo' appears twice"):
        AppConfig.model_validate(
            _config({"name": "echo", "cls": ECHO}, {"name": "echo", "cls": ECHO})
        )


def test_reserved_agent_name() -> None:
    with pytest.raises(ValidationError, match=r"'orchestrator' is reserved"):
        AppConfig.model_validate(_config({"name": "orchestrator", "cls": ECHO}))


@pytest.mark.parametrize("name", ["Echo", "my/agent", "1st", "", "a b", "x" * 64])
def test_bad_agent_names(name: str) -> None:
    with pytest.raises(ValidationError, match="must be lower-case letters"):
        AppConfig.model_validate(_config({"name": name, "cls": ECHO}))


@pytest.mark.parametrize("name", ["echo", "text-2", "my_agent", "a"])
def test_good_agent_names(name: str) -> None:
    assert AgentSpec(name=name, cls=ECHO).name == name


@pytest.mark.parametrize(("field", "value"), [("replicas", 0), ("replicas", 65), ("num_cpus", -1)])
def test_bad_agent_numbers(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        AppConfig.model_validate(_config({"name": "echo", "cls": ECHO, field: value}))


def test_a_config_needs_an_agent() -> None:
    with pytest.raises(ValidationError, match="agents"):
        AppConfig.model_validate({"agents": []})


def test_load_class() -> None:
    assert AgentSpec(name="echo", cls=ECHO).load_class() is EchoAgent
    assert actor_name("echo", 2) == "agent:echo:2"


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        ("actorchestra.actors.examples.EchoAgent", "must look like 'module:Class'"),
        ("actorchestra.actors.examples:", "must look like 'module:Class'"),
        ("actorchestra.no_such_module:EchoAgent", "cannot import"),
        ("actorchestra.actors.examples:NoSuchAgent", "cannot import"),
        ("actorchestra.protocol.errors:ConfigError", "is not an Agent subclass"),
        ("actorchestra.actors.agent:skill", "is not an Agent subclass"),
    ],
)
def test_load_class_errors(cls: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentSpec(name="broken", cls=cls).load_class()
    assert caught.value.message.startswith("agent 'broken': ")
    assert message in caught.value.message
    assert repr(cls) in caught.value.message


def test_load_class_without_a_module_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must look like 'module:Class'"):
        AgentSpec(name="broken", cls=":EchoAgent").load_class()
