"""The offline model server as a detached Ray actor: what `actorchestra up` starts.

When no LLM endpoint is configured, `up` runs the offline server as the actor
`model-server` in the runtime's namespace. The actor serves it with uvicorn on a port
of its node's address (loopback on a laptop), and the agents' `llm.base_url` points
there.

Why an actor and not a Serve application:

- tokens go straight from uvicorn to the agent's `openai` client; as a Serve app every
  stream chunk would also cross the Serve proxy (HAProxy in throughput mode), a hop
  that costs CPU per chunk and time to first token, and the benchmark would measure the
  proxy rather than the runtime;
- the server's admin API (faults, latency) stays off the public ingress port;
- it is a named actor of the namespace, so `down` stops it by name (and the generic
  namespace cleanup or `ray stop` would take it anyway), and a second `up` finds it.

A restarted actor (Ray restarts it if its process dies) must listen where the agents
already look, so its port is settled before the actor exists and passed in: the
caller's (`ACTORCHESTRA_LLM_OFFLINE_PORT`, 8099 by default), or for port 0 a free port
found here, on this node, once. Ray re-runs the constructor with the same arguments,
so a restart binds that same port again, and the actor is held to this node (where
the port was found free, and where its address is) while the node lives.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actorchestra.actors.ray_options import runtime_actor
from actorchestra.serve_apps.model_server.config import ModelServerConfig
from actorchestra.serve_apps.model_server.runner import ModelServerHandle, start_model_server

logger = logging.getLogger(__name__)

MODEL_SERVER_ACTOR = "model-server"


class OfflineModelServerError(RuntimeError):
    """The offline model server could not be started (port taken, actor failed)."""


class ModelServerService:
    """Runs the offline server on `host:port` in a thread of this process until stopped."""

    def __init__(self, config: ModelServerConfig, host: str, port: int) -> None:
        self._handle = start_model_server(config, host=host, port=port)

    def root_url(self) -> str:
        """`http://host:port`, without `/v1`."""
        return self._handle.root_url

    def stop(self) -> None:
        self._handle.stop()


class RayModelServer(ModelServerService):
    """The service as Ray runs it: on the address of the node it was placed on."""

    def __init__(self, config: ModelServerConfig, port: int) -> None:
        if ray.get_runtime_context().was_current_actor_reconstructed:
            logger.warning("offline model server restarted; listening on port %s again", port)
        super().__init__(config, ray.util.get_node_ip_address(), port)


ModelServerRemote = ray.remote(RayModelServer)


def ensure_offline_model_server(
    namespace: str,
    port: int,
    config: ModelServerConfig | None = None,
    timeout_s: float = 60.0,
) -> ModelServerHandle:
    """The `model-server` actor of `namespace`, started if missing; returns its handle.

    Idempotent: a running actor is reused as it is (with its own config and port).
    Port 0 picks a free port now, before the actor is made, so that its restarts keep
    it. `handle.stop()` stops and removes the actor. Needs a connected Ray driver.
    """
    config = config or ModelServerConfig()
    port = port or free_port()
    actor = ModelServerRemote.options(
        **runtime_actor(
            MODEL_SERVER_ACTOR,
            namespace,
            # Here: the node whose free port and address these are. Soft: should the node
            # go, the actor comes back elsewhere (on another address) rather than not at all.
            scheduling_strategy=NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=True
            ),
        )
    ).remote(config, port)
    try:
        root_url: str = ray.get(actor.root_url.remote(), timeout=timeout_s)
    except (RayActorError, RayTaskError, ray.exceptions.GetTimeoutError) as e:
        _kill(actor)
        raise OfflineModelServerError(
            f"the offline model server did not start on port {port}: {_cause(e)}. "
            "Set ACTORCHESTRA_LLM_OFFLINE_PORT to a free port (0 picks one), or point "
            "ACTORCHESTRA_LLM_BASE_URL at a model server."
        ) from None
    return ModelServerHandle(root_url, config.api_key, lambda: stop_offline_model_server(namespace))


def free_port() -> int:
    """A TCP port free on every address of this node right now.

    Another process could take it before the actor binds it; the actor's start then
    fails with the port named, as for a fixed port that is taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_offline_model_server(namespace: str) -> bool:
    """Stop and remove the namespace's `model-server` actor; False when there is none."""
    try:
        actor = ray.get_actor(MODEL_SERVER_ACTOR, namespace=namespace)
    except ValueError:
        return False
    try:
        ray.get(actor.stop.remote(), timeout=15)
    except (RayActorError, RayTaskError, ray.exceptions.GetTimeoutError) as e:
        logger.warning("the offline model server did not stop cleanly: %s", _cause(e))
    _kill(actor)
    return True


def _kill(actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except ValueError:  # already gone
        pass


def _cause(err: BaseException) -> str:
    cause = getattr(err, "cause", None) or getattr(err, "error_msg", None) or err
    text = str(cause).strip().splitlines()
    return text[-1] if text else type(err).__name__
