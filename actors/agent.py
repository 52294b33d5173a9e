"""The plain-Python face of an agent: an `Agent` subclass with `@skill` methods.

A skill takes a `SkillContext` and returns its answer: `str` (a text artifact),
`dict`/`list` (a data artifact), or `NeedsInput(...)` to ask the caller for more.
An async-generator skill streams: each yielded string (or `Chunk`) is one artifact chunk.
The agent card is derived from the class: its name, description, version and skills;
an agent whose skills come from its options (the LLM agent) overrides the instance
hooks `card_info`, `skills` and `skill_function` instead (`choose_skill` reads `skills`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from a2a.types import a2a_pb2

from actorchestra.protocol.cards import AgentInfo, SkillInfo

if TYPE_CHECKING:
    from actorchestra.actors.spec import AgentRuntimeOptions

F = TypeVar("F", bound=Callable[..., Any])

_SKILL_ATTR = "__actorchestra_skill__"


def skill(
    fn: F | None = None,
    *,
    id: str | None = None,
    name: str | None = None,
    description: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    examples: list[str] | tuple[str, ...] = (),
    input_modes: list[str] | tuple[str, ...] = (),
    output_modes: list[str] | tuple[str, ...] = (),
) -> Any:
    """Mark an `Agent` method as a skill; its card entry comes from these arguments.

    Usable bare (`@skill`) or with arguments (`@skill(tags=["math"])`). The id defaults
    to the method name and the description to the first paragraph of its docstring.
    """

    def mark(f: F) -> F:
        if not (inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)):
            raise TypeError(f"skill {f.__qualname__} must be `async def` (or an async generator)")
        doc = inspect.getdoc(f) or ""
        info = SkillInfo(
            id=id or f.__name__,
            name=name or f.__name__.replace("_", " "),
            description=description or doc.split("\n\n")[0].replace("\n", " "),
            tags=list(tags),
            examples=list(examples),
            input_modes=list(input_modes),
            output_modes=list(output_modes),
        )
        setattr(f, _SKILL_ATTR, info)
        return f

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True)
class NeedsInput:
    """Outcome: the skill cannot finish without more from the caller (input-required)."""

    question: str


@dataclass(frozen=True)
class Rejected:
    """Outcome: the skill declines this request (rejected), with the reason."""

    reason: str


@dataclass(frozen=True)
class Chunk:
    """A streamed piece that says whether it is the last one, so it goes out at once.

    A streaming skill that yields plain strings has each one held back until the next
    arrives (only then is it known not to be the last); a skill that knows where its
    stream ends (the LLM agent, on the model's final delta) yields `Chunk`s instead, so
    the first piece reaches the caller without waiting for the second.
    """

    text: str
    last: bool = False


@dataclass(frozen=True)
class Turn:
    """One earlier turn of a conversation (a context): who spoke, and what."""

    role: str  # "user" or "agent"
    text: str
    task_id: str = ""


@dataclass
class SkillContext:
    """What a skill sees of the request, and how it reports progress.

    `history` holds the task's earlier messages (empty on a task's first turn), so a
    skill that asked for input with `NeedsInput` finds the earlier turns there when
    the caller answers on the same task. `conversation` holds the earlier turns of
    the whole context (the caller's previous tasks with the same contextId, oldest
    first), which is what chat memory builds on.
    """

    message: a2a_pb2.Message
    task_id: str
    context_id: str
    skill_id: str
    history: list[a2a_pb2.Message] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    conversation: list[Turn] = field(default_factory=list)
    user: str = ""
    streaming: bool = False  # the caller reads a stream (SendStreamingMessage)
    # Set by the skill, published with its answer: on the (last) artifact and the final
    # status, hence in the task's metadata (the LLM agent puts usage and cost here).
    result_metadata: dict[str, Any] = field(default_factory=dict)
    _progress: Callable[[str], Awaitable[None]] | None = None

    @property
    def text(self) -> str:
        """All text parts of the incoming message, joined by newlines."""
        return "\n".join(p.text for p in self.message.parts if p.HasField("text"))

    @property
    def data(self) -> list[Any]:
        """The structured (data) parts of the incoming message, as Python values."""
        from google.protobuf.json_format import MessageToDict

        out: list[Any] = []
        for p in self.message.parts:
            if p.HasField("data"):
                out.append(MessageToDict(p.data))
        return out

    def for_item_text(self, text: str, metadata: dict[str, Any]) -> SkillContext:
        """This context for one item of a batch: its text, its metadata, a fresh
        `result_metadata`. A shallow copy without `__init__` (it runs once per item of a
        thousand-item batch); the item's message, one text part, is built only if the
        skill asks for `message` (2 us an item, a quarter of a batch's start)."""
        ctx = object.__new__(_ItemContext)
        ctx.__dict__.update(self.__dict__)
        ctx.__dict__["_item_text"] = text
        ctx.metadata, ctx.result_metadata = metadata, {}
        return ctx

    async def progress(self, text: str) -> None:
        """Publish a working-state status update that streaming callers see at once."""
        if self._progress is not None:
            await self._progress(text)


class _ItemContext(SkillContext):
    """A batch item's context (`SkillContext.for_item_text`): the batch message's ids and
    role, the item's text as its one part, made into a message on first use."""

    @property  # type: ignore[override]
    def message(self) -> a2a_pb2.Message:
        own = self.__dict__.get("_item_message")
        if own is None:
            batch = self.__dict__["message"]  # the batch's, copied from the template
            own = a2a_pb2.Message(
                message_id=batch.message_id,
                context_id=batch.context_id,
                task_id=batch.task_id,
                role=batch.role,
                parts=[a2a_pb2.Part(text=self.__dict__["_item_text"])],
            )
            self.__dict__["_item_message"] = own
        return own

    @message.setter
    def message(self, value: a2a_pb2.Message) -> None:
        self.__dict__["_item_message"] = value

    @property
    def text(self) -> str:
        own = self.__dict__.get("_item_message")
        return self.__dict__["_item_text"] if own is None else SkillContext.text.fget(self)  # type: ignore[attr-defined]


SkillFn = Callable[..., Awaitable[Any] | AsyncIterator[str]]


class Agent:
    """Base class of every agent. Subclass it, add `@skill` methods.

    Class attributes set the card: `name` (defaults to the class name in lower case),
    `description` (defaults to the class docstring) and `version`. `__init__` receives
    the `options` mapping from the runtime config as keyword arguments.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "0.1.0"

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.agent_name: str = type(self).name or type(self).__name__.lower()
        self.runtime: AgentRuntimeOptions | None = None

    def attach(self, name: str, runtime: AgentRuntimeOptions) -> None:
        """Called by the actor right after construction, before `setup`.

        `name` is the name the agent is served under (per-agent settings such as a model
        override are keyed by it); `runtime` holds what all agents share (LLM and tool
        configuration among it).
        """
        self.agent_name = name
        self.runtime = runtime

    async def setup(self) -> None:
        """Called once in the actor before the first request; open clients here."""

    def card_info(self, name: str | None = None, description: str | None = None) -> AgentInfo:
        """What this instance's card says; by default what the class declares."""
        return type(self).agent_info(name=name, description=description)

    @classmethod
    def skills(cls) -> dict[str, SkillInfo]:
        found: dict[str, SkillInfo] = {}
        for attr in dir(cls):
            info = getattr(getattr(cls, attr, None), _SKILL_ATTR, None)
            if isinstance(info, SkillInfo):
                if info.id in found:
                    raise TypeError(f"{cls.__name__} declares skill id {info.id!r} twice")
                found[info.id] = info
        return found

    @classmethod
    def agent_info(cls, name: str | None = None, description: str | None = None) -> AgentInfo:
        skills = cls.skills()
        if not skills:
            raise TypeError(f"{cls.__name__} has no @skill methods; an agent needs at least one")
        return AgentInfo(
            name=name or cls.name or cls.__name__.lower(),
            description=description
            or cls.description
            or (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " "),
            version=cls.version,
            skills=list(skills.values()),
        )

    def skill_function(self, skill_id: str) -> SkillFn:
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            info = getattr(fn, _SKILL_ATTR, None)
            if isinstance(info, SkillInfo) and info.id == skill_id:
                return getattr(self, attr)
        raise KeyError(skill_id)

    def choose_skill(self, ctx_text: str, requested: str | None) -> str:
        """Which skill answers a message: the one asked for in metadata, else the best match.

        A message may name its skill with metadata `{"skill": "<id>"}`; otherwise the
        skill whose id, name or tags occur in the text wins, and the first skill is the
        fallback. Subclasses with smarter routing override this.
        """
        skills = self.skills()
        if requested:
            if requested not in skills:
                raise KeyError(requested)
            return requested
        lowered = ctx_text.lower()
        best, best_score = next(iter(skills)), 0
        for sid, info in skills.items():
            words = {sid.lower(), info.name.lower(), *(t.lower() for t in info.tags)}
            score = sum(1 for w in words if w and w in lowered)
            if score > best_score:
                best, best_score = sid, score
        return best
