"""An LLM agent that calls another running agent as a tool, across real Ray actors.

The session runtime serves `text`; this test starts one more agent actor next to it (an
LLM agent whose model is the offline server on loopback, with `agent:text` as a tool)
and talks to it through `LocalAgentEndpoint`, as the ingress does. The model asks the
`ask_text` tool; the tool finds `text`'s replicas by name from inside the actor and
sends them an A2A message; the answer comes back through the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import ray
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2
from google.protobuf.json_format import MessageToDict

from actorchestra.actors.endpoint import LocalAgentEndpoint
from actorchestra.actors.llm import LLMConfig
from actorchestra.actors.runtime import ensure_agent
from actorchestra.actors.spec import AgentRuntimeOptions, AgentSpec
from actorchestra.protocol.context import CallInfo
from actorchestra.serve_apps.model_server import ModelServerHandle
from tests.integration.conftest import Runtime
from tests.llm_fixtures import model_server  # noqa: F401

pytestmark = pytest.mark.integration

ALICE = CallInfo(user="alice", authenticated=True)


@pytest.fixture
async def delegator(
    runtime: Runtime,
    model_server: ModelServerHandle,  # noqa: F811
) -> AsyncIterator[LocalAgentEndpoint]:
    spec = AgentSpec(
        name="delegator",
        cls="actorchestra.actors.llm_agent:LLMAgent",
        options={"system_prompt": "You are a dispatcher.", "tools": ["agent:text"]},
    )
    options = AgentRuntimeOptions(llm=LLMConfig(base_url=model_server.base_url))
    handles = ensure_agent(spec, runtime.namespace, f"{runtime.base_url}/a2a/delegator", options)
    try:
        # Started just now: wait until it answers, as the runtime does before serving it.
        await asyncio.gather(*(h.ping.remote() for h in handles))
        yield LocalAgentEndpoint(spec.name, handles)
    finally:
        for handle in handles:
            ray.kill(handle, no_restart=True)


async def test_an_llm_agent_asks_another_agent_through_a_tool(
    delegator: LocalAgentEndpoint,
) -> None:
    request = a2a_pb2.SendMessageRequest(
        message=new_text_message(
            "ask the text agent to uppercase: hello actors", role=a2a_pb2.Role.ROLE_USER
        )
    )
    task = await delegator.send_message(request, ALICE)
    assert isinstance(task, a2a_pb2.Task)
    status = "".join(p.text for p in task.status.message.parts)
    assert task.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED, status

    (call,) = MessageToDict(task.metadata)["tool_calls"]
    assert (call["name"], call["ok"], call["output"]) == ("ask_text", True, "HELLO ACTORS")
    answer = "".join(p.text for a in task.artifacts for p in a.parts)
    assert "the ask_text tool returned HELLO ACTORS" in answer
