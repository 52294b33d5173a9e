"""`actorchestra`: start, inspect and stop the runtime.

`up` joins a reachable Ray cluster (or starts a local one on loopback), deploys the
Serve config, waits until every agent is healthy and prints where everything is.

The commands that call the runtime's HTTP API (`run`, `agents`, `status`) send a bearer
token when one is set (`--token`, else ACTORCHESTRA_TOKEN), as a runtime with
ACTORCHESTRA_AUTH_TOKENS requires; a refusal (401, 403) is told with what to set.
`up` waits on `/health`, which needs none, and sends none.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import SecretStr

from actorchestra import local_ray
from actorchestra.client import bearer_headers, response_reason
from actorchestra.run_command import refusal_hint, run_task
from actorchestra.settings import ClientSettings, Settings

logger = logging.getLogger(__name__)

BUILDER = "actorchestra.serve_apps.builder:build_app"


def default_config_path() -> Path:
    return Path(str(importlib.resources.files("actorchestra.serve_apps") / "default_config.yaml"))


def load_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"config file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise SystemExit(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict) or not data.get("applications"):
        raise SystemExit(f"config file {path} has no `applications:` (the `serve deploy` format)")
    return data


# runtime key in the config file -> the setting that overrides it when set explicitly
_RUNTIME_SETTING = {
    "namespace": "namespace",
    "public_url": "public_url",
    "max_body_bytes": "max_body_bytes",
    "health_interval_s": "health_interval_s",
    "probe_timeout_s": "probe_timeout_s",
    "data_dir": "state_dir",
    "auth_tokens": "auth_tokens",
    "session_secret": "session_secret",
}
# Secrets the file may hold: wrapped as SecretStr on the way in, so the merged args (which
# travel to Ray and may be logged) never carry them in the clear.
_SECRET_RUNTIME_KEYS = {"auth_tokens", "session_secret"}
_AGENT_SETTING = {
    "max_tasks": "max_tasks_per_replica",
    "push_allowed_hosts": "allowed_hosts",
    "heap_reserve_mib": "agent_heap_reserve_mib",
}
# runtime.agent.llm / runtime.agent.tools keys -> their settings
_LLM_SETTING = {
    "base_url": "llm_base_url",
    "api_key": "llm_api_key",
    "organization": "llm_organization",
    "model": "llm_model",
    "embedding_model": "llm_embedding_model",
    "agent_models": "llm_agent_models",
    "timeout_s": "llm_timeout_s",
    "max_retries": "llm_max_retries",
    "prices": "llm_prices",
}
_TOOLS_SETTING = {
    "allowed_hosts": "allowed_hosts",
    "call_timeout_s": "tool_timeout_s",
    "http_timeout_s": "http_tool_timeout_s",
    "python_wall_s": "python_tool_wall_s",
    "python_memory_mb": "python_tool_memory_mb",
}
_AGENT_SECTIONS = {"llm": _LLM_SETTING, "tools": _TOOLS_SETTING}


def _merge_section(
    target: dict[str, Any],
    from_file: dict[str, Any],
    setting_of: dict[str, str],
    explicit: set[str],
) -> None:
    """File values replace defaults, except where the matching setting was set explicitly."""
    for key, value in from_file.items():
        if setting_of.get(key) not in explicit:
            target[key] = value


def route_path(app: dict[str, Any]) -> str:
    """The application's route prefix as a URL path to append ("" for the root)."""
    return str(app.get("route_prefix") or "/").rstrip("/")


def merged_args(
    app: dict[str, Any], settings: Settings, default_public_url: str | None = None
) -> dict[str, Any]:
    """Application args with the runtime section completed from settings.

    Precedence: ACTORCHESTRA_* variables set explicitly > the config file > defaults.
    `default_public_url` (the ingress address `up` deploys to) stands in for the public
    URL when neither the environment nor the file gives one. A public URL made from an
    address gets the app's `route_prefix`, where Serve serves the app; one given is
    taken as it is (a proxy in front may map paths as it likes).
    """
    args = dict(app.get("args") or {})
    # A variable set to nothing (`ACTORCHESTRA_LLM_BASE_URL=`) leaves the file its say;
    # so does an empty token list (`ACTORCHESTRA_AUTH_TOKENS=`, as `.env` templates write
    # it), which must not switch off the auth the file configures.
    explicit = {
        f
        for f in settings.model_fields_set
        if getattr(settings, f) is not None
        and not (f == "auth_tokens" and not settings.auth_tokens)
    }
    runtime = settings.runtime_options()
    if "public_url" not in explicit:
        address = settings.ingress_url
        if default_public_url and not explicit & {"host", "port"}:
            address = default_public_url.rstrip("/")
        runtime["public_url"] = address + route_path(app)
    for key, value in dict(args.get("runtime") or {}).items():
        if key == "agent" and isinstance(value, dict):
            for sub, sub_value in value.items():
                if sub in _AGENT_SECTIONS and isinstance(sub_value, dict):
                    _merge_section(runtime["agent"][sub], sub_value, _AGENT_SECTIONS[sub], explicit)
                elif _AGENT_SETTING.get(sub) not in explicit:
                    runtime["agent"][sub] = sub_value
        elif _RUNTIME_SETTING.get(key) not in explicit:
            if key == "public_url" and explicit & {"host", "port"}:
                continue
            runtime[key] = _secret(value) if key in _SECRET_RUNTIME_KEYS else value
    args["runtime"] = runtime
    return args


def _secret(value: Any) -> Any:
    """A file's secret (a string, or a user -> token table) as SecretStr; else as given.

    A blank string is no secret (unset, as for the variable). Anything else is left for
    the config's validation to refuse; wrapped, the tokens show as `**********` there too.
    """
    if isinstance(value, str):
        return SecretStr(value) if value.strip() else None
    if isinstance(value, dict):
        return {k: SecretStr(v) if isinstance(v, str) else v for k, v in value.items()}
    return value


# -- Ray --------------------------------------------------------------------------------


def _state_file(settings: Settings) -> Path:
    return settings.state_dir / "runtime.json"


def _read_state(path: Path) -> local_ray.RuntimeState | None:
    """The state file; an unreadable one is reported and removed (it can point nowhere)."""
    try:
        return local_ray.read_state(path)
    except local_ray.LocalRayError as e:
        print(f"{e}\nremoving it", flush=True)
        path.unlink(missing_ok=True)
        return None


def _current_state(path: Path) -> local_ray.RuntimeState | None:
    """The state file, unless it names a cluster `up` started that is gone (then removed)."""
    state = _read_state(path)
    if state is not None and _is_stale(state):
        _drop_stale(state, path)
        return None
    return state


def _is_stale(state: local_ray.RuntimeState) -> bool:
    """`up` started this cluster, and none of its recorded processes runs any more."""
    return state.started_by_cli and state.leader is not None and not local_ray.running_parts(state)


def _drop_stale(state: local_ray.RuntimeState, path: Path) -> None:
    pid = state.leader.pid if state.leader else "?"
    print(
        f"the Ray cluster `actorchestra up` started at {state.ray_address} (pid {pid}) is "
        f"no longer running; removing the stale state file {path}",
        flush=True,
    )
    path.unlink(missing_ok=True)


def connect_ray(settings: Settings, start_if_missing: bool) -> bool:
    """Join the configured or a reachable cluster; start a local one if allowed.

    Returns True when this call started Ray.
    """
    import ray

    address = settings.ray_address
    if address is None:
        state = _current_state(_state_file(settings))
        if state is not None:
            address = state.ray_address
    if address is not None:
        try:
            ray.init(address=address, namespace=settings.namespace, logging_level="ERROR")
            return False
        except ConnectionError:
            if settings.ray_address is not None or not start_if_missing:
                raise
    elif not start_if_missing:
        ray.init(address="auto", namespace=settings.namespace, logging_level="ERROR")
        return False
    state = start_local_ray(settings)
    ray.init(address=state.ray_address, namespace=settings.namespace, logging_level="ERROR")
    return True


def start_local_ray(settings: Settings) -> local_ray.RuntimeState:
    """`ray start --head --block` on loopback, detached; recorded for `down` to stop."""
    address = f"127.0.0.1:{settings.ray_port}"
    cmd = [
        shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray",
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={settings.ray_port}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={settings.dashboard_port}",
        "--disable-usage-stats",
    ]
    if settings.num_cpus is not None:
        cmd.append(f"--num-cpus={settings.num_cpus}")
    env = {
        **os.environ,
        **settings.serve_env(),
        # On SIGTERM a node first drains (up to 30 s) so work can move to other nodes;
        # a one-node cluster has nowhere to move it to.
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    log = settings.state_dir / "ray.log"
    print(f"starting a local Ray on {address} (log: {log}) ...", flush=True)
    try:
        state = local_ray.start(cmd, env, log, address, settings.up_timeout_s)
    except local_ray.LocalRayError as e:
        raise SystemExit(str(e)) from None
    local_ray.write_state(_state_file(settings), state)
    return state


# -- commands ---------------------------------------------------------------------------


def cmd_up(settings: Settings, config_path: Path) -> int:
    from ray import serve

    from actorchestra.protocol.errors import ConfigError
    from actorchestra.serve_apps.builder import build_runtime, ingress_options

    config = load_config(config_path)
    http = dict(config.get("http_options") or {})
    if {"host", "port"} & settings.model_fields_set or not http:
        http.update(host=settings.host, port=settings.port)
    host, port = http.get("host", settings.host), int(http.get("port", settings.port))
    address = f"http://{host}:{port}"
    for app in config["applications"]:
        try:  # before anything starts: a typo in the overrides fails here
            ingress_options(app.get("deployments"))
        except ConfigError as e:
            raise SystemExit(f"application {app.get('name')!r}: {e.message}") from None
    started = connect_ray(settings, start_if_missing=True)
    serve.start(http_options={"host": host, "port": port})
    deployed: list[tuple[str, str, list[str]]] = []  # (URL here, public URL, agents) per app
    llm_lines: list[str] = []
    for app in config["applications"]:
        if app.get("import_path") != BUILDER:
            raise SystemExit(f"application {app.get('name')!r}: import_path must be {BUILDER}")
        args = merged_args(app, settings, address)
        llm_lines.append(_llm_endpoint(args["runtime"], settings))
        print(f"deploying application {app.get('name', 'actorchestra')!r} ...", flush=True)
        serve.run(
            # the file's `deployments:` overrides (`num_replicas` of `ingress`, ...), as
            # `serve deploy` would apply them
            build_runtime(args, app.get("deployments")),
            name=app.get("name", "actorchestra"),
            route_prefix=app.get("route_prefix", "/"),
        )
        # where Serve serves the app: the ingress address under its route prefix
        here = address + route_path(app)
        deployed.append((here, args["runtime"]["public_url"], [a["name"] for a in args["agents"]]))
    for here, _, _ in deployed:
        _wait_healthy(here, settings.up_timeout_s)
    import ray

    _remember_ingress(settings, deployed[0][0])
    ray.shutdown()  # the runtime lives on in the cluster; this process only deployed it
    for base, public_url, names in deployed:
        print(f"\nactorchestra is up: {base}")
        if public_url.rstrip("/") != base:
            print(f"  public URL   {public_url}  (agent cards name it)")
        print(f"  health       {base}/health")
        print(f"  agents       {base}/v1/agents")
        print(f"  chat         {base}/v1/chat")
        print(f"  API docs     {base}/docs")
        for name in names:
            print(f"  agent {name:<8} {base}/a2a/{name}/.well-known/agent-card.json")
    for line in dict.fromkeys(llm_lines):
        print(f"  LLM          {line}")
    if started:
        state = local_ray.read_state(_state_file(settings))
        pid = state.leader.pid if state and state.leader else "?"
        where = f"127.0.0.1:{settings.ray_port}"
        print(f"  Ray          {where}  (pid {pid}, started by `up`; `down` stops it)")
    print(
        f"  Ray dashboard http://127.0.0.1:{settings.dashboard_port}  (token: `ray get-auth-token`)"
    )
    return 0


def _remember_ingress(settings: Settings, url: str) -> None:
    """Record where the runtime is served (under its route prefix) for the other commands."""
    import ray

    path = _state_file(settings)
    state = _read_state(path) or local_ray.RuntimeState(
        ray_address=ray.get_runtime_context().gcs_address
    )
    state.ingress_url = url
    local_ray.write_state(path, state)


def caller_url(settings: Settings) -> str:
    """The runtime `status`, `agents` and `run` call: ACTORCHESTRA_PUBLIC_URL when set,
    else where `up` last served it (under its route prefix) unless another address is
    asked for, else the configured address."""
    if "public_url" not in settings.model_fields_set:
        state = _current_state(_state_file(settings))
        recorded = (state.ingress_url or "") if state is not None else ""
        asked = settings.model_fields_set & {"host", "port"}
        if recorded and (not asked or recorded.startswith(settings.ingress_url + "/")):
            return recorded.rstrip("/")
    return settings.ingress_url


def _llm_endpoint(runtime: dict[str, Any], settings: Settings) -> str:
    """Make sure the agents have a model endpoint; start the offline server if none is set.

    Fills `runtime.agent.llm.base_url` and `runtime.llm_offline` in place and returns the
    line `up` prints about it.
    """
    llm = runtime["agent"]["llm"]
    if llm.get("base_url"):
        runtime.setdefault("llm_offline", False)
        return f"{llm['base_url']}  (model {llm.get('model')})"
    from actorchestra.serve_apps.model_server.actor import (
        OfflineModelServerError,
        ensure_offline_model_server,
    )

    try:
        server = ensure_offline_model_server(runtime["namespace"], settings.llm_offline_port)
    except OfflineModelServerError as e:
        raise SystemExit(str(e)) from None
    llm["base_url"] = server.base_url
    runtime["llm_offline"] = True
    note = f"no LLM endpoint configured: using the offline model server at {server.base_url}"
    logger.info(note)
    print(note, flush=True)
    return f"{server.base_url}  (offline model server; ACTORCHESTRA_LLM_BASE_URL sets a real one)"


def _wait_healthy(base: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base}/health", timeout=5)
            if r.status_code == 200 and r.json().get("status") == "healthy":
                return
            last = r.text
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.5)
    raise SystemExit(f"the runtime did not become healthy within {timeout_s:.0f}s: {last}")


def cmd_down(settings: Settings) -> int:
    path = _state_file(settings)
    state = _read_state(path)
    if state is not None and state.started_by_cli:
        if state.leader is not None:
            return _stop_local_ray(state, path)
        print(
            f"the state file {path} comes from an older `actorchestra up` and names no "
            "process to stop; removing the runtime only (`ray stop` would stop every Ray "
            "on this machine)",
            flush=True,
        )
    return _remove_runtime(settings, path)


def _stop_local_ray(state: local_ray.RuntimeState, path: Path) -> int:
    """Stop exactly the cluster `up` started: its process group and what runs under it."""
    if _is_stale(state):
        _drop_stale(state, path)
        return 0
    pid = state.leader.pid if state.leader else "?"
    print(
        f"stopping the Ray cluster `actorchestra up` started at {state.ray_address} "
        f"(pid {pid}, process group {state.pgid}) ...",
        flush=True,
    )
    try:
        report = local_ray.stop(state)
    except local_ray.LocalRayError as e:
        raise SystemExit(str(e)) from None
    if report.left:
        left = ", ".join(f"{name} (pid {pid})" for pid, name in sorted(report.left.items()))
        raise SystemExit(f"these processes of the cluster are still running: {left}")
    print(f"stopped the runtime and its Ray cluster: {report.summary(state.node)}")
    path.unlink(missing_ok=True)
    return 0


def _remove_runtime(settings: Settings, path: Path) -> int:
    """A cluster `up` did not start stays up: remove the Serve apps and our actors only."""
    import ray
    from ray import serve

    from actorchestra.actors.runtime import kill_namespace

    try:
        connect_ray(settings, start_if_missing=False)
    except ConnectionError:
        print("no Ray cluster is running; nothing to stop")
        path.unlink(missing_ok=True)
        return 0
    from actorchestra.serve_apps.model_server.actor import stop_offline_model_server

    if stop_offline_model_server(settings.namespace):
        print("stopped the offline model server")
    for app in list(serve.status().applications):
        serve.delete(app)
    killed = kill_namespace(settings.namespace)
    print(f"deleted the Serve apps and {len(killed)} actors in {settings.namespace!r}")
    ray.shutdown()
    path.unlink(missing_ok=True)
    return 0


def api_token(args: argparse.Namespace) -> SecretStr | None:
    """`--token`, else ACTORCHESTRA_TOKEN; None when neither is set."""
    given = getattr(args, "token", None)
    if given is not None:
        return SecretStr(given) if given.strip() else None
    return ClientSettings().token


def _get(url: str, path: str, token: SecretStr | None) -> httpx.Response:
    try:
        r = httpx.get(f"{url}{path}", headers=bearer_headers(token), timeout=10)
    except httpx.HTTPError as e:
        raise SystemExit(f"the runtime is not reachable at {url}: {e}") from None
    if r.status_code in (401, 403):
        hint = refusal_hint(url, r.status_code, token is not None)
        raise SystemExit(
            "\n".join(filter(None, [f"refused ({r.status_code}): {response_reason(r)}", hint]))
        )
    return r


def cmd_status(settings: Settings, token: SecretStr | None = None) -> int:
    url = caller_url(settings)
    r = _get(url, "/health", token)
    body = r.json()
    print(f"runtime  {url}  {body.get('status')}")
    print(f"active tasks  {body.get('active_tasks', '?')}")
    llm = body.get("llm")
    if llm:
        kind = "offline model server" if llm.get("offline") else "model endpoint"
        state = f"reachable, {llm.get('latency_ms')} ms" if llm.get("reachable") else "unreachable"
        print(f"LLM  {llm.get('base_url')}  ({kind}, model {llm.get('model')}, {state})")
    for name, health in (body.get("agents") or {}).items():
        print(f"  {name:<16} {health}")
    return 0 if r.status_code == 200 else 1


def cmd_agents(settings: Settings, as_json: bool, token: SecretStr | None = None) -> int:
    r = _get(caller_url(settings), "/v1/agents", token)
    agents = r.json().get("agents", [])
    if as_json:
        print(json.dumps(agents, indent=2))
        return 0
    print(f"{'NAME':<16} {'KIND':<7} {'HEALTH':<10} {'REPLICAS':<9} {'IN-FLIGHT':<10} SKILLS")
    for a in agents:
        skills = ", ".join(s["id"] for s in a["skills"])
        print(
            f"{a['name']:<16} {a['kind']:<7} {a['health']:<10} {len(a['replicas']):<9} "
            f"{a['in_flight']:<10} {skills}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorchestra",
        description="Agents as A2A-speaking Ray actors behind a Ray Serve ingress.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--port", type=int, help="ingress HTTP port (default 8000, or ACTORCHESTRA_PORT)"
    )
    caller = argparse.ArgumentParser(add_help=False, parents=[common])
    caller.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token for a runtime with auth: one of its ACTORCHESTRA_AUTH_TOKENS "
        "(default: ACTORCHESTRA_TOKEN, which keeps it off the command line)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up",
        parents=[common],
        help="start Ray if needed, deploy the runtime, wait until healthy",
    )
    up.add_argument("--config", type=Path, help="Serve config file (default: packaged example)")
    sub.add_parser(
        "down", parents=[common], help="stop the runtime (and the local Ray that `up` started)"
    )
    sub.add_parser("status", parents=[caller], help="health of the runtime and its agents")
    agents = sub.add_parser(
        "agents", parents=[caller], help="list agents with health, replicas and skills"
    )
    agents.add_argument("--json", action="store_true", help="print the registry rows as JSON")
    run = sub.add_parser(
        "run",
        parents=[caller],
        help="submit a task, watch each subtask live, print the result and its cost",
    )
    run.add_argument("input", help="the task, in words")
    run.add_argument("--workflow", type=Path, help="JSON file with an explicit workflow")
    run.add_argument(
        "--user",
        help="user id (tasks and sessions are per user); with a token, leave it out: the "
        "token names the user",
    )
    run.add_argument("--session", help="session id")
    run.add_argument("--no-synthesis", action="store_true", help="answer with the raw outputs")
    run.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")
    return parser


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    body: dict[str, Any] = {"timeout_s": args.timeout}
    if args.workflow is not None:
        try:
            body["workflow"] = json.loads(args.workflow.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"cannot read the workflow file {args.workflow}: {e}") from None
    if args.user:
        body["user_id"] = args.user
    if args.session:
        body["session_id"] = args.session
    if args.no_synthesis:
        body["synthesize"] = False
    url = caller_url(settings)
    try:
        # --token as given: the client reads ACTORCHESTRA_TOKEN without one, sends none
        # for a blank one (as api_token does for the other commands)
        return asyncio.run(run_task(url, args.input, body, token=args.token))
    except httpx.HTTPError as e:
        raise SystemExit(f"the runtime is not reachable at {url}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "port", None):
        overrides["port"] = args.port
    settings = Settings(**overrides)
    if settings.ray_address is None:
        # A laptop runtime stays on loopback: without this Ray resolves 127.0.0.1 to the
        # host's outward address. Must be set before `ray` is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Ray 2.60 starts local clusters with token auth; the driver must use it as well.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if args.command == "up":
        return cmd_up(settings, args.config or settings.config or default_config_path())
    if args.command == "down":
        return cmd_down(settings)
    if args.command == "status":
        return cmd_status(settings, api_token(args))
    if args.command == "run":
        return cmd_run(settings, args)
    return cmd_agents(settings, args.json, api_token(args))


if __name__ == "__main__":
    sys.exit(main())
