"""Leaf values for schema instances: what a property's name or format asks the prompt for.

`schema_instance` decides the shape; this module guesses the strings and numbers that
go into it (a `url` gets the prompt's URL, `city` the place after "in", `result` the
value of the arithmetic in the prompt) and bends them to the schema's bounds.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actorchestra.serve_apps.model_server import text as t

_URL_NAMES = {"url", "link", "href", "uri", "website", "endpoint", "page", "site", "source"}
_EXPR_NAMES = {"expression", "expr", "formula", "equation", "calculation", "math"}
_QUERY_NAMES = {
    "query",
    "q",
    "search",
    "question",
    "prompt",
    "input",
    "text",
    "request",
    "instruction",
    "task",
    "content",
    "message",
    "keywords",
    "term",
    "terms",
}
_ANSWER_NAMES = {
    "summary",
    "answer",
    "response",
    "reply",
    "result",
    "output",
    "explanation",
    "description",
    "reason",
    "rationale",
    "comment",
    "note",
    "analysis",
    "body",
}
_TITLE_NAMES = {"title", "name", "subject", "heading", "headline"}
_TAG_NAMES = {"keyword", "tag", "topic", "term", "label", "category"}
_PLACE_NAMES = {"city", "location", "place", "country", "region", "town", "where"}
_NUMBER_RESULT_NAMES = {"result", "answer", "total", "sum", "value", "product", "output"}
_FRACTION_NAMES = {"confidence", "score", "probability", "certainty", "weight"}


@dataclass
class FillContext:
    """What the prompt offers to fill a schema with.

    `answer` is the model's prose reply to the prompt, used for summary-like strings;
    `hints` are known values by (normalised) property name, e.g. from `key: value` text.
    """

    text: str
    answer: str = ""
    hints: Mapping[str, Any] = field(default_factory=dict)
    numbers: list[float] = field(default_factory=list)
    _next_number: int = 0

    @classmethod
    def from_text(
        cls,
        text: str,
        answer: str = "",
        hints: Mapping[str, Any] | None = None,
    ) -> FillContext:
        """A context whose hints are the `key: value` pairs and whose numbers are in `text`."""
        found: dict[str, Any] = dict(t.key_values(text))
        found.update({t.normalise_key(k): v for k, v in (hints or {}).items()})
        return cls(text=text, answer=answer or text, hints=found, numbers=t.extract_numbers(text))

    def take_number(self) -> float | None:
        """The next number of the prompt not yet used by another property."""
        if self._next_number < len(self.numbers):
            self._next_number += 1
            return self.numbers[self._next_number - 1]
        return None


def guess_string(
    schema: Mapping[str, Any],
    name: str | None,
    index: int,
    ctx: FillContext,
) -> str:
    """A string for a property from what its name or format asks for, found in the prompt."""
    fmt = str(schema.get("format", ""))
    text = ctx.text
    key = t.normalise_key(name or "")
    urls, emails = t.extract_urls(text), t.extract_emails(text)
    is_url = fmt in ("uri", "url", "uri-reference", "iri") or key.endswith("url")
    if is_url or key in _URL_NAMES:
        return urls[index % len(urls)] if urls else "https://example.com/"
    if fmt == "email" or key.endswith("email"):
        return emails[0] if emails else "offline@example.com"
    if fmt in ("date-time", "date", "time"):
        return {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "00:00:00Z"}[fmt]
    if fmt == "uuid":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{text}#{name}#{index}"))
    if fmt in ("hostname", "idn-hostname"):
        return "example.com"
    if fmt == "ipv4":
        return "127.0.0.1"
    if key in _EXPR_NAMES:
        return t.extract_expression(text) or text
    quoted = t.extract_quoted(text)
    if key in _QUERY_NAMES:
        if key in ("keywords", "terms"):
            return " ".join(t.keywords(text))
        return quoted[0] if quoted else _strip_request(text)
    if key in _PLACE_NAMES:
        return _place(text) or "Unknown"
    if key in _ANSWER_NAMES:
        return ctx.answer or text
    words = t.keywords(text, 8)
    if key in _TAG_NAMES and words:
        return words[index % len(words)]
    if key in _TITLE_NAMES:
        return (
            quoted[0]
            if quoted
            else (" ".join(w.capitalize() for w in t.keywords(text, 4)) or "Untitled")
        )
    if key in ("id", "identifier", "key", "slug") or key.endswith("id"):
        return "-".join(t.keywords(text, 3) or ["item"]) + f"-{index + 1}"
    if key in ("language", "lang", "locale"):
        return "en"
    if words:
        return " ".join(words[:3]) if index == 0 else f"{' '.join(words[:3])} {index + 1}"
    return name or "offline"


def guess_number(name: str | None, ctx: FillContext) -> float:
    """A number for a property: arithmetic for `result`-like names, else the next in the prompt."""
    key = t.normalise_key(name or "")
    if key in _NUMBER_RESULT_NAMES:
        expression = t.extract_expression(ctx.text)
        value = t.evaluate(expression) if expression else None
        if value is not None:
            return value
    if key in _FRACTION_NAMES:
        return 0.5
    taken = ctx.take_number()
    return taken if taken is not None else 1.0


_LEAD_IN_RE = re.compile(
    r"^(?:(?:please|can you|could you|would you)\s+)*"
    r"(?:(?:search|look\s+up|find|google|query)(?:\s+(?:the\s+web|online|the\s+internet))?"
    r"(?:\s+for)?\s+)?",
    re.IGNORECASE,
)


def _strip_request(text: str) -> str:
    """Drop a lead-in ("Please search the web for") so a query is just the subject."""
    stripped = _LEAD_IN_RE.sub("", text.strip(), count=1)
    return stripped.rstrip("?.!").strip() or text.strip()


def _place(text: str) -> str | None:
    """A capitalised place name after "in", "at", "for" or "of" ("weather in New York")."""
    tokens = re.findall(r"[\w'-]+|[^\w\s]", text)
    for i, token in enumerate(tokens[:-1]):
        if token.lower() in ("in", "at", "for", "of", "near") and tokens[i + 1][:1].isupper():
            name = [tokens[i + 1]]
            for nxt in tokens[i + 2 :]:
                if not nxt[:1].isupper():
                    break
                name.append(nxt)
            return " ".join(name)
    return None


def clamp_number(value: float, schema: Mapping[str, Any], integer: bool) -> float | int:
    """Move a value inside the schema's bounds, onto its multipleOf grid, to an int if asked."""
    low, high = _bound(schema.get("minimum")), _bound(schema.get("maximum"))
    ex_low, ex_high = _bound(schema.get("exclusiveMinimum")), _bound(schema.get("exclusiveMaximum"))
    step = 1.0 if integer else 1e-6
    if ex_low is not None and value <= ex_low:
        value = ex_low + step
    if ex_high is not None and value >= ex_high:
        value = ex_high - step
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    multiple = _bound(schema.get("multipleOf"))
    if multiple:
        digits = max(0, -math.floor(math.log10(multiple))) + 6 if multiple < 1 else 0
        value = round(round(value / multiple) * multiple, digits)
        if (low is not None and value < low) or (ex_low is not None and value <= ex_low):
            value = round(value + multiple, digits)
        if (high is not None and value > high) or (ex_high is not None and value >= ex_high):
            value = round(value - multiple, digits)
    if not integer:
        return value
    result = round(value)
    if (low is not None and result < low) or (ex_low is not None and result <= ex_low):
        result = math.ceil(value + (1 if ex_low is not None and value == ex_low else 0))
    if (high is not None and result > high) or (ex_high is not None and result >= ex_high):
        result = math.floor(value - (1 if ex_high is not None and value == ex_high else 0))
    return int(result)


def _bound(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def fit_length(value: str, schema: Mapping[str, Any]) -> str:
    """Pad or cut a string to the schema's minLength/maxLength."""
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    if len(value) < low:
        value = value + "." * (low - len(value))
    if high is not None and len(value) > int(high):
        value = value[: int(high)]
    return value


def make_unique(items: list[Any]) -> list[Any]:
    """Vary repeated strings and numbers so `uniqueItems` holds."""
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        candidate = item
        while json.dumps(candidate, sort_keys=True) in seen:
            if isinstance(candidate, str):
                candidate = f"{item} {i + 1}"
                i += 1
            elif isinstance(candidate, int | float) and not isinstance(candidate, bool):
                candidate = candidate + 1
            else:
                break
        seen.add(json.dumps(candidate, sort_keys=True))
        out.append(candidate)
    return out
