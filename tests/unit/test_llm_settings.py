"""The LLM and tools settings: ACTORCHESTRA_LLM_* and friends, their precedence, their secrets."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from actorchestra import cli
from actorchestra.actors.llm import LLMConfig, ModelPrice
from actorchestra.actors.spec import AgentRuntimeOptions
from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.serve_apps.builder import build_app
from actorchestra.serve_apps.config import AppConfig
from actorchestra.settings import DEFAULT_OFFLINE_LLM_PORT, Settings

KEY = "sk-live-0123456789abcdef"


pytestmark = pytest.mark.usefixtures("clean_env")


def _agent_options(settings: Settings) -> AgentRuntimeOptions:
    """What the agents get: the runtime section validated as the app config does."""
    return AgentRuntimeOptions.model_validate(settings.runtime_options()["agent"])


# -- defaults ------------------------------------------------------------------------------


def test_without_llm_variables_there_is_no_endpoint() -> None:
    llm = Settings().runtime_options()["agent"]["llm"]
    assert "base_url" not in llm and "api_key" not in llm  # `up` starts the offline server
    assert llm["model"] == "actorchestra-offline"
    options = _agent_options(Settings())
    assert options.llm.api_key is None
    assert options.llm.max_retries == 3 and options.llm.timeout_s == 60
    assert options.tools == ToolsConfig()
    assert Settings().llm_offline_port == DEFAULT_OFFLINE_LLM_PORT == 8099


# -- each variable -----------------------------------------------------------------------------


def test_llm_variables_fill_the_llm_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("ACTORCHESTRA_LLM_API_KEY", KEY)
    monkeypatch.setenv("ACTORCHESTRA_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("ACTORCHESTRA_LLM_EMBEDDING_MODEL", "text-embedding-3-small")
    monkeypatch.setenv("ACTORCHESTRA_LLM_TIMEOUT_S", "12.5")
    monkeypatch.setenv("ACTORCHESTRA_LLM_MAX_RETRIES", "5")
    monkeypatch.setenv("ACTORCHESTRA_LLM_ORGANIZATION", "org-1")
    llm = _agent_options(Settings()).llm
    assert llm.base_url == "https://api.openai.com/v1"
    assert llm.api_key is not None and llm.api_key.get_secret_value() == KEY
    assert (llm.model, llm.embedding_model) == ("gpt-4o-mini", "text-embedding-3-small")
    assert (llm.timeout_s, llm.max_retries, llm.organization) == (12.5, 5, "org-1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("writer=gpt-4o-mini", {"writer": "gpt-4o-mini"}),
        (
            " writer = gpt-4o-mini , coder=qwen2.5-coder:7b,",
            {"writer": "gpt-4o-mini", "coder": "qwen2.5-coder:7b"},
        ),
        ('{"reviewer": "llama3.1:8b"}', {"reviewer": "llama3.1:8b"}),
        ("", {}),
    ],
)
def test_agent_models_are_pairs(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: dict[str, str]
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_MODEL", "default-model")
    monkeypatch.setenv("ACTORCHESTRA_LLM_AGENT_MODELS", raw)
    llm = _agent_options(Settings()).llm
    assert llm.agent_models == expected
    for agent, model in expected.items():
        assert llm.model_for(agent) == model
    assert llm.model_for("somebody-else") == "default-model"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("writer", "'writer' is not `agent=model`"),
        ("writer=gpt, =llama", "'=llama' is not `agent=model`"),
        ("coder=", "'coder=' is not `agent=model`"),
        ("{not json", "ACTORCHESTRA_LLM_AGENT_MODELS is not valid JSON"),
    ],
)
def test_bad_agent_models_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_AGENT_MODELS", raw)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert message in str(caught.value)


def test_prices_are_a_json_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ACTORCHESTRA_LLM_PRICES",
        '{"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}}',
    )
    llm = _agent_options(Settings()).llm
    assert llm.prices == {"gpt-4o-mini": ModelPrice(input_per_1m=0.15, output_per_1m=0.6)}
    assert llm.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert llm.cost("unpriced", 1000, 1000) == 0.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[1, 2]", "ACTORCHESTRA_LLM_PRICES must be a JSON object"),
        ("{", "ACTORCHESTRA_LLM_PRICES is not valid JSON"),
        ('{"m": {"input_per_1m": 1}}', "ACTORCHESTRA_LLM_PRICES: each model needs"),
        ('{"m": {"input_per_1m": -1, "output_per_1m": 1}}', "greater than or equal to 0"),
    ],
)
def test_bad_prices_are_refused(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_PRICES", raw)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ACTORCHESTRA_LLM_TIMEOUT_S", "0"),
        ("ACTORCHESTRA_LLM_MAX_RETRIES", "-1"),
        ("ACTORCHESTRA_LLM_MAX_RETRIES", "many"),
        ("ACTORCHESTRA_LLM_OFFLINE_PORT", "70000"),
        ("ACTORCHESTRA_PYTHON_TOOL_MEMORY_MB", "8"),
    ],
)
def test_bad_numbers_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("ACTORCHESTRA_").lower()):
        Settings()


def test_blank_endpoint_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_BASE_URL", "  ")
    monkeypatch.setenv("ACTORCHESTRA_LLM_API_KEY", "")
    llm = Settings().runtime_options()["agent"]["llm"]
    assert "base_url" not in llm and "api_key" not in llm


def test_tools_variables_fill_the_tools_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_ALLOWED_HOSTS", "Intranet.Example, 10.0.0.0/8")
    monkeypatch.setenv("ACTORCHESTRA_TOOL_TIMEOUT_S", "7")
    monkeypatch.setenv("ACTORCHESTRA_HTTP_TOOL_TIMEOUT_S", "3")
    monkeypatch.setenv("ACTORCHESTRA_PYTHON_TOOL_WALL_S", "2.5")
    monkeypatch.setenv("ACTORCHESTRA_PYTHON_TOOL_MEMORY_MB", "512")
    options = _agent_options(Settings())
    # One list feeds both: push webhooks and the http_get tool.
    assert options.push_allowed_hosts == ["Intranet.Example", "10.0.0.0/8"]
    assert options.tools.allowed_hosts == ["intranet.example", "10.0.0.0/8"]
    tools = options.tools
    assert (tools.call_timeout_s, tools.http_timeout_s) == (7, 3)
    assert (tools.python_wall_s, tools.python_memory_mb) == (2.5, 512)


# -- secrets -----------------------------------------------------------------------------------


def test_the_api_key_stays_out_of_reprs_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_API_KEY", KEY)
    settings = Settings()
    runtime = settings.runtime_options()
    assert isinstance(runtime["agent"]["llm"]["api_key"], SecretStr)
    config = AppConfig.model_validate(
        {"agents": [{"name": "echo", "cls": "x:Y"}], "runtime": runtime}
    )
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info(
            "settings %s runtime %s config %s", settings, runtime, config
        )
    for text in (repr(settings), str(runtime), repr(config), caplog.text):
        assert KEY not in text
    assert KEY not in config.model_dump_json()
    assert config.runtime.agent.llm.api_key.get_secret_value() == KEY  # type: ignore[union-attr]


def test_the_app_builder_hands_the_replicas_the_key_not_its_mask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_API_KEY", KEY)
    args = cli.merged_args(
        {"args": {"agents": [{"name": "echo", "cls": "actorchestra.actors.examples:EchoAgent"}]}},
        Settings(),
    )
    app = build_app(args)  # builds the Serve application; starts nothing
    (bound,) = app._bound_deployment.init_args
    received = AppConfig.model_validate(bound)  # what the ingress replica does
    assert received.runtime.agent.llm.api_key is not None
    assert received.runtime.agent.llm.api_key.get_secret_value() == KEY


# -- precedence: explicit env > the config file > defaults -------------------------------------


def _app(agent: dict[str, Any]) -> dict[str, Any]:
    return {"args": {"agents": [{"name": "echo", "cls": "x:Y"}], "runtime": {"agent": agent}}}


FILE_LLM = {
    "base_url": "http://vllm.internal:8000/v1",
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "agent_models": {"coder": "Qwen/Qwen2.5-Coder-7B-Instruct"},
    "timeout_s": 120,
    "backoff_initial_s": 1.0,  # no setting for it: the file always decides
}


def test_the_files_llm_section_beats_defaults() -> None:
    llm = cli.merged_args(_app({"llm": FILE_LLM}), Settings())["runtime"]["agent"]["llm"]
    assert {k: llm[k] for k in FILE_LLM} == FILE_LLM
    assert llm["max_retries"] == 3  # the file says nothing: the default
    config = LLMConfig.model_validate(llm)
    assert config.model_for("coder") == "Qwen/Qwen2.5-Coder-7B-Instruct"


def test_explicit_llm_variables_beat_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("ACTORCHESTRA_LLM_MODEL", "llama3.1:8b")
    monkeypatch.setenv("ACTORCHESTRA_LLM_API_KEY", KEY)
    file_llm = {**FILE_LLM, "api_key": "from-the-file"}
    llm = cli.merged_args(_app({"llm": file_llm}), Settings())["runtime"]["agent"]["llm"]
    assert llm["base_url"] == "http://127.0.0.1:11434/v1"
    assert llm["model"] == "llama3.1:8b"
    assert llm["api_key"].get_secret_value() == KEY
    assert llm["timeout_s"] == 120  # not set in the env: the file's value
    assert llm["agent_models"] == FILE_LLM["agent_models"]


def test_an_endpoint_in_the_file_alone_counts_as_configured() -> None:
    runtime = cli.merged_args(_app({"llm": {"base_url": "http://gpu:8000/v1"}}), Settings())[
        "runtime"
    ]
    line = cli._llm_endpoint(runtime, Settings())  # configured: no Ray, no offline server
    assert runtime["llm_offline"] is False
    assert line.startswith("http://gpu:8000/v1")


def test_a_blank_endpoint_variable_leaves_the_file_its_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_BASE_URL", "")
    app = _app({"llm": {"base_url": "http://gpu:8000/v1"}})
    assert cli.merged_args(app, Settings())["runtime"]["agent"]["llm"]["base_url"] == (
        "http://gpu:8000/v1"
    )


def test_the_files_tools_section_and_explicit_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app({"tools": {"allowed_hosts": ["file.internal"], "call_timeout_s": 9}})
    tools = cli.merged_args(app, Settings())["runtime"]["agent"]["tools"]
    assert (tools["allowed_hosts"], tools["call_timeout_s"]) == (["file.internal"], 9)
    monkeypatch.setenv("ACTORCHESTRA_ALLOWED_HOSTS", "env.internal")
    tools = cli.merged_args(app, Settings())["runtime"]["agent"]["tools"]
    assert (tools["allowed_hosts"], tools["call_timeout_s"]) == (["env.internal"], 9)


def test_merged_llm_args_make_a_valid_app_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCHESTRA_LLM_AGENT_MODELS", "echo=small-model")
    args = cli.merged_args(_app({"llm": FILE_LLM, "tools": {"call_timeout_s": 9}}), Settings())
    config = AppConfig.model_validate(args)
    assert config.runtime.agent.llm.model_for("echo") == "small-model"
    assert config.runtime.agent.llm.base_url == FILE_LLM["base_url"]
    assert config.runtime.agent.tools.call_timeout_s == 9
    assert config.runtime.llm_offline is False
