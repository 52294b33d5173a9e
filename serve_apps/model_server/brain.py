"""The offline model's mind: from a chat request to a reply, deterministically.

No HTTP here, so unit tests can call `respond` directly. The decision order is:

1. The last message is a tool result -> answer with it (as JSON if a schema was asked for).
2. Tools are offered and one matches the request (or `tool_choice` forces one) -> call it.
3. A skill list is in the system prompt -> a plan (see `planning`), in the asked schema.
4. `response_format` is `json_schema` -> an instance of the schema filled from the prompt;
   `json_object` -> `{"answer": ...}`.
5. Otherwise a prose answer that says it comes from the offline model, acts the role the
   system prompt gives, evaluates arithmetic, summarises, or restates the request.

Long replies (for benchmarks): when the request asks for "N tokens"/"N words", or for a
long/detailed/essay answer, the reply is that long (N, else `max_tokens`, else 1000);
`reply_tokens` (request field `offline_reply_tokens`) asks for an exact length directly.
`max_tokens` always caps the reply, with `finish_reason="length"` when it cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actorchestra.serve_apps.model_server import planning, tools
from actorchestra.serve_apps.model_server import text as t
from actorchestra.serve_apps.model_server.schema_instance import FillContext, instance_for

OFFLINE_TAG = "[offline model]"
DEFAULT_LONG_TOKENS = 1000
_ROLE_RE = re.compile(r"\byou are\s+(?:now\s+)?((?:an?|the)\s+[^.,;:\n!?]{2,60})", re.IGNORECASE)
_LONG_RE = re.compile(r"\b(long|lengthy|detailed|essay|in[- ]depth|verbose|elaborate)\b", re.I)
_LENGTH_RE = re.compile(r"\b(\d{2,6})\s*(?:-\s*)?(tokens?|words?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class BrainReply:
    """What the model says: text or tool calls, and why it stopped."""

    content: str | None
    tool_calls: tuple[tools.ToolCall, ...] = ()
    finish_reason: str = "stop"


@dataclass(frozen=True)
class _Message:
    role: str
    text: str
    raw: Mapping[str, Any]


def respond(
    messages: Sequence[Mapping[str, Any]],
    *,
    tool_specs: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    response_format: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
    reply_tokens: int | None = None,
) -> BrainReply:
    """The reply to a chat request; same arguments, same reply."""
    msgs = [
        _Message(str(m.get("role", "user")), t.message_text(m.get("content")), m) for m in messages
    ]
    user = next((m.text for m in reversed(msgs) if m.role == "user"), "")
    system = [m.text for m in msgs if m.role in ("system", "developer")]
    schema, wants_json = _schema_of(response_format)

    if msgs and msgs[-1].role in ("tool", "function"):
        answer = _tool_answer(msgs, user)
        if wants_json:
            context = FillContext.from_text(f"{user}\n{_tool_results(msgs)}", answer=answer)
            return _capped(_json_reply(schema, context), max_tokens)
        return _capped(answer, max_tokens)

    available = tools.function_tools(tool_specs)
    chosen = tools.choose_tool(available, tool_choice, user)
    if chosen is not None:
        call = tools.call_tool(chosen, user, salt=str(len(msgs)))
        return BrainReply(content=None, tool_calls=(call,), finish_reason="tool_calls")

    skills = planning.find_skills(system)
    if skills:
        the_plan = planning.plan(user, skills)
        if schema is not None:
            value = instance_for(schema, FillContext.from_text(user), hint=the_plan)
            return _capped(json.dumps(value, ensure_ascii=False), max_tokens)
        return _capped(json.dumps(the_plan, ensure_ascii=False), max_tokens)

    answer = chat_answer(system, user)
    if wants_json:
        return _capped(_json_reply(schema, FillContext.from_text(user, answer=answer)), max_tokens)
    target = reply_tokens if reply_tokens is not None else long_reply_tokens(user, max_tokens)
    if target is not None:
        answer = lengthen(answer, user, target)
    return _capped(answer, max_tokens)


def _schema_of(response_format: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, bool]:
    """(schema or None, whether JSON was asked for) from an OpenAI `response_format`."""
    if not response_format:
        return None, False
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return (schema if isinstance(schema, Mapping) else {"type": "object"}), True
    return None, kind == "json_object"


def _json_reply(schema: Mapping[str, Any] | None, context: FillContext) -> str:
    value = instance_for(schema, context) if schema is not None else {"answer": context.answer}
    return json.dumps(value, ensure_ascii=False)


def _capped(content: str, max_tokens: int | None) -> BrainReply:
    if max_tokens is not None:
        content, cut = t.truncate_tokens(content, max_tokens)
        if cut:
            return BrainReply(content=content, finish_reason="length")
    return BrainReply(content=content)


def _tool_results(msgs: Sequence[_Message]) -> str:
    results = []
    for m in reversed(msgs):
        if m.role not in ("tool", "function"):
            break
        results.append(m.text)
    return "\n".join(reversed(results))


def _tool_answer(msgs: Sequence[_Message], user: str) -> str:
    """A reply that uses the tool results after the assistant's tool calls."""
    names: dict[str, str] = {}
    for m in msgs:
        for call in m.raw.get("tool_calls") or []:
            if isinstance(call, Mapping):
                fn = call.get("function") or {}
                names[str(call.get("id"))] = str(fn.get("name", "tool"))
    parts = []
    for m in msgs[::-1]:
        if m.role not in ("tool", "function"):
            break
        name = names.get(str(m.raw.get("tool_call_id")), str(m.raw.get("name") or "tool"))
        parts.append(f"the {name} tool returned {m.text.strip() or '(nothing)'}")
    joined = "; ".join(reversed(parts))
    question = _first_sentence(user, 30)
    lead = f'To answer "{question}": ' if question else ""
    return f"{OFFLINE_TAG} {lead}{joined}."


def system_role(system: Sequence[str]) -> str | None:
    """The role a system prompt gives ("You are a travel agent" -> "a travel agent")."""
    for text in system:
        match = _ROLE_RE.search(text)
        if match:
            return match.group(1).strip()
    return None


def chat_answer(system: Sequence[str], user: str) -> str:
    """A short, honest, useful prose reply to the last user message."""
    role = system_role(system)
    tag = f"[offline model, acting as {role}]" if role else OFFLINE_TAG
    body = _answer_body(user)
    return f"{tag} {body}"


def _answer_body(user: str) -> str:
    stripped = user.strip()
    lower = stripped.lower()
    if not stripped:
        return "I am the offline actorchestra model. Send a message and I will answer it."
    if (
        re.match(r"^(hi|hello|hey|good (morning|afternoon|evening))\b", lower)
        and len(t.words(lower)) <= 6
    ):
        return (
            "Hello! I am the offline actorchestra model: I answer deterministically "
            "without a real language model. How can I help?"
        )
    if re.search(r"\b(who|what) are you\b|\bwhich model\b|\bwhat model\b", lower):
        return (
            "I am the offline actorchestra model, a deterministic stand-in for a language "
            "model: I restate and summarise, do arithmetic, fill JSON schemas, call tools "
            "and plan over skills."
        )
    expression = t.extract_expression(stripped)
    if expression and re.search(r"[+*/%^]|\d\s*-\s*\d", expression):
        value = t.evaluate(expression)
        if value is not None:
            return f"{expression} = {t.format_number(value)}."
    if re.search(r"\b(summar|tl;?dr|recap)", lower):
        subject = stripped.split(":", 1)[1] if ":" in stripped else stripped
        summary = " ".join(t.sentences(subject)[:2])
        summary, _ = t.truncate_tokens(summary, 60)
        words = ", ".join(t.keywords(subject)) or "none"
        return f"Summary: {summary} (key words: {words})."
    summary = _first_sentence(stripped, 40).rstrip(".!?")
    words = ", ".join(t.keywords(stripped)) or "none"
    return f'You asked: "{summary}". Key points: {words}.'


def _first_sentence(text: str, limit: int) -> str:
    first = (t.sentences(text) or [""])[0]
    first, cut = t.truncate_tokens(first, limit)
    return first + ("..." if cut else "")


def long_reply_tokens(user: str, max_tokens: int | None) -> int | None:
    """How long a reply the request asks for, or None for a normal short reply."""
    match = _LENGTH_RE.search(user)
    if match:
        asked = int(match.group(1))
        return min(asked, max_tokens) if max_tokens is not None else asked
    if _LONG_RE.search(user):
        return max_tokens if max_tokens is not None else DEFAULT_LONG_TOKENS
    return None


def lengthen(answer: str, user: str, target: int) -> str:
    """Pad a reply with numbered, deterministic sentences to exactly `target` tokens."""
    words = t.keywords(user, 12) or ["offline", "model", "answer"]
    pieces = [answer]
    total = t.count_tokens(answer)
    i = 0
    while total < target:
        a, b = words[i % len(words)], words[(i * 7 + 3) % len(words)]
        sentence = f" Point {i + 1}: {a} relates to {b} in this offline answer."
        pieces.append(sentence)
        total += t.count_tokens(sentence)
        i += 1
    text, _ = t.truncate_tokens("".join(pieces), target)
    return text
