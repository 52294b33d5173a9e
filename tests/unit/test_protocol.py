"""protocol/: the codec, call contexts, task ids, error mapping and card URLs."""

from __future__ import annotations

import pickle
import uuid

import httpx
import pytest
from a2a.helpers import new_text_message
from a2a.server.context import ServerCallContext
from a2a.server.id_generator import IDGeneratorContext
from a2a.server.routes import create_agent_card_routes
from a2a.types import a2a_pb2
from a2a.utils import errors as a2a_errors
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from google.protobuf import struct_pb2
from starlette.applications import Starlette

from actorchestra.protocol.cards import AgentInfo, SkillInfo, build_agent_card
from actorchestra.protocol.codec import pack, pack_optional, unpack, unpack_optional
from actorchestra.protocol.context import (
    CallInfo,
    NamedUser,
    ReplicaTaskIdGenerator,
    make_task_id,
    replica_of_task,
)
from actorchestra.protocol.errors import (
    ActorchestraError,
    AgentNotFoundError,
    AgentUnavailableError,
    ConfigError,
    InvalidInputError,
    PayloadTooLargeError,
    error_body,
    to_a2a_error,
)
from actorchestra.protocol.remote import fetch_card, split_card_url

# -- codec --------------------------------------------------------------------------------


def _task() -> a2a_pb2.Task:
    task = a2a_pb2.Task(
        id="r0-" + str(uuid.uuid4()),
        context_id="ctx",
        status=a2a_pb2.TaskStatus(state=a2a_pb2.TaskState.TASK_STATE_COMPLETED),
        artifacts=[a2a_pb2.Artifact(artifact_id="a1", parts=[a2a_pb2.Part(text="done")])],
    )
    task.metadata.update({"skill": "echo", "n": 2})
    return task


@pytest.mark.parametrize(
    "message",
    [
        new_text_message("hello", role=a2a_pb2.Role.ROLE_USER),
        a2a_pb2.SendMessageRequest(
            message=new_text_message("hi", role=a2a_pb2.Role.ROLE_USER),
            configuration=a2a_pb2.SendMessageConfiguration(history_length=3),
        ),
        _task(),
        a2a_pb2.TaskArtifactUpdateEvent(
            task_id="t", artifact=a2a_pb2.Artifact(artifact_id="a"), append=True, last_chunk=True
        ),
        a2a_pb2.TaskStatusUpdateEvent(
            task_id="t", status=a2a_pb2.TaskStatus(state=a2a_pb2.TaskState.TASK_STATE_WORKING)
        ),
        a2a_pb2.ListTasksResponse(tasks=[_task()], next_page_token="abc", total_size=9),
        build_agent_card(AgentInfo(name="x", skills=[SkillInfo(id="s", name="s")]), "http://h"),
        a2a_pb2.GetTaskRequest(id="t"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_pack_unpack_round_trip(message: object) -> None:
    packed = pack(message)  # type: ignore[arg-type]
    name, data = packed
    assert name == message.DESCRIPTOR.full_name  # type: ignore[attr-defined]
    assert name.endswith(f".{type(message).__name__}")
    assert isinstance(data, bytes)
    back = unpack(pickle.loads(pickle.dumps(packed)))  # what Ray does to it on the way
    assert type(back) is type(message)
    assert back == message


def test_unpack_refuses_a_type_that_is_not_a2a() -> None:
    with pytest.raises(ValueError, match=r"not an A2A message type: 'google.protobuf.Struct'"):
        unpack(pack(struct_pb2.Struct()))
    with pytest.raises(ValueError, match="not an A2A message type"):
        unpack(("no.such.Type", b""))


def test_optional_pack_keeps_none() -> None:
    assert pack_optional(None) is None
    assert unpack_optional(None) is None
    msg = a2a_pb2.GetTaskRequest(id="t")
    assert unpack_optional(pack_optional(msg)) == msg


# -- call context -------------------------------------------------------------------------


def test_call_info_round_trips_through_a_server_context() -> None:
    info = CallInfo(
        user="alice",
        authenticated=True,
        tenant="acme",
        extensions=frozenset({"urn:ext:a", "urn:ext:b"}),
        method="SendMessage",
    )
    ctx = info.to_server_context()
    assert isinstance(ctx, ServerCallContext)
    assert ctx.user.user_name == "alice" and ctx.user.is_authenticated
    assert ctx.tenant == "acme"
    assert ctx.requested_extensions == {"urn:ext:a", "urn:ext:b"}
    assert ctx.state["method"] == "SendMessage"
    assert CallInfo.from_server_context(ctx) == info


def test_call_info_from_an_sdk_context_and_back() -> None:
    ctx = ServerCallContext(user=NamedUser("bob", False), state={"method": "GetTask"})
    info = CallInfo.from_server_context(ctx)
    assert info == CallInfo(user="bob", method="GetTask")
    assert pickle.loads(pickle.dumps(info)) == info  # it crosses the actor boundary
    assert CallInfo().to_server_context().state == {}


# -- task ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("replica", [0, 3, 17, 9999])
def test_task_ids_carry_their_replica(replica: int) -> None:
    task_id = make_task_id(replica)
    assert task_id.startswith(f"r{replica}-")
    assert replica_of_task(task_id) == replica
    assert make_task_id(replica) != task_id


def test_the_sdk_id_generator_stamps_the_replica() -> None:
    generated = ReplicaTaskIdGenerator(7).generate(IDGeneratorContext())
    assert replica_of_task(generated) == 7


@pytest.mark.parametrize(
    "foreign",
    [
        "",
        str(uuid.uuid4()),
        "task-123",
        "r-" + str(uuid.uuid4()),
        "rx-" + str(uuid.uuid4()),
        "r12345-" + str(uuid.uuid4()),  # more than four digits
        "r3-short",
        "r3-" + str(uuid.uuid4()).upper(),
        "xr3-" + str(uuid.uuid4()),
    ],
)
def test_foreign_task_ids_have_no_replica(foreign: str) -> None:
    assert replica_of_task(foreign) is None


# -- errors -------------------------------------------------------------------------------


class _CustomConfigError(ConfigError):
    """A subclass that only sets a message keeps its parent's wire code."""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConfigError("bad config"), a2a_errors.InvalidParamsError),
        (InvalidInputError("bad input"), a2a_errors.InvalidParamsError),
        (AgentNotFoundError("no agent"), a2a_errors.MethodNotFoundError),
        (AgentUnavailableError("down"), a2a_errors.InternalError),
        (PayloadTooLargeError("too big"), a2a_errors.InvalidRequestError),
        (_CustomConfigError("subclass"), a2a_errors.InvalidParamsError),
        (ActorchestraError("root"), a2a_errors.InternalError),
    ],
)
def test_runtime_errors_map_to_protocol_errors(
    error: ActorchestraError, expected: type[a2a_errors.A2AError]
) -> None:
    mapped = to_a2a_error(error)
    assert type(mapped) is expected
    assert mapped.message == error.message


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (ConfigError("c"), 400, "INVALID_CONFIG"),
        (InvalidInputError("i"), 422, "INVALID_INPUT"),
        (AgentNotFoundError("n"), 404, "AGENT_NOT_FOUND"),
        (AgentUnavailableError("u"), 503, "AGENT_UNAVAILABLE"),
        (PayloadTooLargeError("p"), 413, "PAYLOAD_TOO_LARGE"),
        (ActorchestraError("r"), 500, "INTERNAL"),
    ],
)
def test_error_body(error: ActorchestraError, status: int, reason: str) -> None:
    assert error_body(error) == {
        "error": {"code": status, "reason": reason, "message": error.message}
    }
    assert str(error) == error.message


# -- remote cards -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:9000", ("http://h:9000", AGENT_CARD_WELL_KNOWN_PATH)),
        ("http://h:9000/a2a/x", ("http://h:9000/a2a/x", AGENT_CARD_WELL_KNOWN_PATH)),
        ("https://h/a2a/x/", ("https://h/a2a/x", AGENT_CARD_WELL_KNOWN_PATH)),
        (
            "https://h/a2a/x/.well-known/agent-card.json",
            ("https://h", "/a2a/x/.well-known/agent-card.json"),
        ),
        ("http://h/cards/mine.json", ("http://h", "/cards/mine.json")),
    ],
)
def test_split_card_url(url: str, expected: tuple[str, str]) -> None:
    assert split_card_url(url) == expected


@pytest.mark.parametrize(
    "url", ["ftp://h/a2a/x", "h:9000/a2a/x", "/a2a/x", "http://", "file:///etc/passwd", ""]
)
def test_split_card_url_refuses_non_http_urls(url: str) -> None:
    with pytest.raises(InvalidInputError, match="must be an absolute http"):
        split_card_url(url)


def _card_server(card: a2a_pb2.AgentCard, path: str) -> httpx.AsyncClient:
    app = Starlette(routes=create_agent_card_routes(card, card_url=path))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


async def test_fetch_card_reads_a_served_card() -> None:
    card = build_agent_card(
        AgentInfo(name="remote", skills=[SkillInfo(id="s", name="s", tags=["t"])]),
        "http://agents.test/a2a/remote",
    )
    async with _card_server(card, f"/a2a/remote{AGENT_CARD_WELL_KNOWN_PATH}") as http:
        fetched = await fetch_card("http://agents.test/a2a/remote", http)
    assert fetched == card


async def test_fetch_card_reports_a_missing_card_clearly() -> None:
    card = build_agent_card(AgentInfo(name="x"), "http://agents.test")
    async with _card_server(card, "/elsewhere.json") as http:
        with pytest.raises(InvalidInputError, match=r"could not read an A2A agent card at http"):
            await fetch_card("http://agents.test/a2a/remote", http)


async def test_fetch_card_refuses_a_card_without_a_name() -> None:
    card = build_agent_card(AgentInfo(name=""), "http://agents.test")
    async with _card_server(card, AGENT_CARD_WELL_KNOWN_PATH) as http:
        with pytest.raises(InvalidInputError, match="has no name"):
            await fetch_card("http://agents.test", http)
