"""Chat memory: a conversation's earlier turns as LLM messages, within a token budget.

A conversation (an A2A context) grows without bound; a model's context window and the
cost of each call do not. The newest turns matter most, so they are kept word for
word; when the budget runs out, the older ones are folded into one line built from
the first sentence of each. That line is deterministic (no model call), so memory
costs nothing extra and the same conversation always yields the same prompt.

Tokens are counted the way the offline model server counts them (words and single
punctuation marks, plus a few per message for the role framing). Real tokenizers
differ by tens of percent; the budget is a bound on the memory's size, not an exact
fit to a particular model's window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from actorchestra.actors.agent import Turn

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
MESSAGE_OVERHEAD = 3  # tokens a chat format spends per message on role and separators
SUMMARY_PREFIX = "Earlier in this conversation:"
_SUMMARY_TURN_TOKENS = 24  # at most this much of each dropped turn's first sentence


def count_tokens(text: str) -> int:
    """Word and punctuation tokens in `text`."""
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def message_tokens(text: str) -> int:
    """What one chat message holding `text` costs, framing included."""
    return MESSAGE_OVERHEAD + count_tokens(text)


def truncate_tokens(text: str, limit: int) -> str:
    """The first `limit` tokens of `text` (with the whitespace between them)."""
    if limit <= 0:
        return ""
    for i, match in enumerate(_TOKEN_RE.finditer(text)):
        if i == limit - 1:
            return text[: match.end()]
    return text


def first_sentence(text: str) -> str:
    """The first sentence of `text`, on one line."""
    flat = " ".join(text.split())
    return _SENTENCE_END_RE.split(flat, maxsplit=1)[0] if flat else ""


@dataclass(frozen=True)
class Memory:
    """The messages that carry a conversation into the next model call, and what it cost."""

    messages: list[dict[str, str]]
    kept: int  # turns sent word for word
    summarised: int  # older turns folded into the summary line
    tokens: int  # what `messages` cost, by `message_tokens`

    def stats(self) -> dict[str, int]:
        return {"turns_kept": self.kept, "turns_summarised": self.summarised, "tokens": self.tokens}


def _as_message(turn: Turn) -> dict[str, str]:
    return {"role": "assistant" if turn.role == "agent" else "user", "content": turn.text}


def summary_line(dropped: Sequence[Turn], limit: int) -> str:
    """One system line recalling `dropped` turns in at most `limit` tokens, or "" if none fit."""
    pieces = []
    for turn in dropped:
        said = truncate_tokens(first_sentence(turn.text), _SUMMARY_TURN_TOKENS)
        if said:
            who = "you said" if turn.role == "agent" else "the user said"
            pieces.append(f"{who} {said}")
    if not pieces:
        return ""
    budget = limit - MESSAGE_OVERHEAD
    if budget <= count_tokens(SUMMARY_PREFIX) + 2:
        return ""
    line = f"{SUMMARY_PREFIX} " + "; ".join(pieces)
    if count_tokens(line) <= budget:
        return line
    # Too long: the most recent of the dropped turns matter most, so cut from the front.
    prefix = f"{SUMMARY_PREFIX} ..."
    while len(pieces) > 1 and count_tokens(f"{prefix} " + "; ".join(pieces)) > budget:
        pieces.pop(0)
    return truncate_tokens(f"{prefix} " + "; ".join(pieces), budget)


def build_memory(turns: Sequence[Turn], budget: int) -> Memory:
    """The newest turns that fit `budget` tokens, older ones summarised; never over budget.

    A quarter of the budget (at most 200 tokens) is set aside for the summary line as
    soon as anything has to be dropped, so a long conversation still recalls how it
    began; the summary may use whatever the kept turns leave, and is cut to fit.
    """
    if budget <= 0 or not turns:
        return Memory([], 0, len(turns), 0)
    costs = [message_tokens(t.text) for t in turns]
    if sum(costs) <= budget:
        return Memory([_as_message(t) for t in turns], len(turns), 0, sum(costs))
    reserve = min(budget // 4, 200)
    kept_cost = 0
    first_kept = len(turns)
    for index in range(len(turns) - 1, -1, -1):
        if kept_cost + costs[index] > budget - reserve:
            break
        kept_cost += costs[index]
        first_kept = index
    kept = turns[first_kept:]
    line = summary_line(turns[:first_kept], budget - kept_cost)
    messages = [_as_message(t) for t in kept]
    tokens = kept_cost
    if line:
        messages.insert(0, {"role": "system", "content": line})
        tokens += message_tokens(line)
    return Memory(messages, len(kept), first_kept, tokens)
