"""Text helpers the offline model reasons with: a tokenizer, word stems, clauses, extraction.

Everything here is pure and deterministic, because the offline model must give the same
answer to the same request: tests assert on its output, and benchmarks compare runs.
The tokenizer is deliberately simple (words and single punctuation marks); token counts
only need to be stable and roughly proportional to text length, not to match tiktoken.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_RE = re.compile(r"[A-Za-z0-9]+")
_URL_RE = re.compile(r"https?://[^\s<>\"')\]]+")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
# An arithmetic expression: numbers joined by operators, optionally parenthesised.
_EXPR_RE = re.compile(r"[(\s]*-?\d+(?:\.\d+)?(?:\s*[-+*/%^]\s*[(\s]*-?\d+(?:\.\d+)?[)\s]*)+[)]*")
_QUOTED_RE = re.compile(r"\"([^\"]+)\"|'([^']+)'|“([^”]+)”")

STOPWORDS = frozenset(
    """a an the and or but if then than so of to in on at by for with from into onto about as
    is are was were be been being am do does did doing have has had having i me my we our
    you your he she it its they them their this that these those there here what which who
    whom whose when where why how please can could would should will shall may might must
    let lets just also too very some any all each every both either neither not no nor only
    own same such up down out over under again further once me us him her hers ours yours
    theirs myself yourself itself tell give make want need like get got use using via""".split()
)


def tokenize(text: str) -> list[str]:
    """Split text into word and punctuation tokens, the unit for usage counts and streaming."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens `tokenize` finds in `text`."""
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def token_pieces(text: str) -> Iterator[str]:
    """Cut text into one piece per token, each with the whitespace before it, lazily:
    a stream's first piece is ready before the rest of a long reply is cut.

    Joining the pieces gives back the text (minus trailing whitespace), and a stream that
    sends one piece per chunk sends exactly `count_tokens(text)` content chunks.
    """
    start = 0
    for match in _TOKEN_RE.finditer(text):
        yield text[start : match.end()]
        start = match.end()


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """The first `limit` tokens of text, and whether anything was cut."""
    limit, end = max(limit, 0), 0  # `end`: where the limit-th token ends (no pieces built)
    for n, match in enumerate(_TOKEN_RE.finditer(text), 1):
        if n > limit:
            return text[:end], True
        end = match.end()
    return text, False


def stem(word: str) -> str:
    """A crude suffix-stripping stem, enough for "summaries" to meet "summarise"."""
    w = word.lower()
    for suffix, repl in (
        ("isation", "ize"), ("ization", "ize"), ("ising", "ize"), ("izing", "ize"),
        ("ises", "ize"), ("izes", "ize"), ("ised", "ize"), ("ized", "ize"), ("ise", "ize"),
        ("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""),
    ):  # fmt: skip
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: len(w) - len(suffix)] + repl
    return w


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words, in order, stopwords kept."""
    return [w.lower() for w in _WORD_RE.findall(text)]


def split_identifier(name: str) -> list[str]:
    """Words of an identifier: `get_weather`, `getWeather`, `get-weather` -> get, weather."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return words(spaced.replace("_", " ").replace("-", " ").replace(".", " "))


def content_stems(text: str) -> list[str]:
    """Stems of the words that carry meaning (stopwords dropped), in order, repeats kept."""
    return [stem(w) for w in split_identifier(text) if w not in STOPWORDS]


def overlap(query: Iterable[str], target: Iterable[str]) -> int:
    """How many distinct stems two texts share: the model's notion of relevance."""
    return len(set(query) & set(target))


def keywords(text: str, limit: int = 5) -> list[str]:
    """The most frequent meaningful words, ties broken by first appearance."""
    seen: dict[str, int] = {}
    order: dict[str, int] = {}
    for i, w in enumerate(words(text)):
        if w in STOPWORDS or len(w) < 3 or w.isdigit():
            continue
        seen[w] = seen.get(w, 0) + 1
        order.setdefault(w, i)
    ranked = sorted(seen, key=lambda w: (-seen[w], order[w]))
    return ranked[:limit]


def sentences(text: str) -> list[str]:
    """Sentences, split after . ! ? followed by whitespace (URLs and decimals survive)."""
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class Clause:
    """One piece of a request, and whether it was introduced as a follow-up ("then ...")."""

    text: str
    follows_previous: bool


_FOLLOW_UP = ("and then", "after that", "afterwards", "then", "next", "finally")
_CLAUSE_SPLIT_RE = re.compile(
    r"\s*;\s*|,\s*(?=(?:and\s+then|then|and|after\s+that|afterwards|next|finally)\b)"
    r"|,\s+|\s+(?=(?:and\s+then|then|and|after\s+that|afterwards)\b)",
    re.IGNORECASE,
)


def split_clauses(text: str) -> list[Clause]:
    """Split a request on sentences, ";", ",", "and", "then"; keep follow-up markers.

    A clause introduced by "then" (or "after that", "next", "finally") is marked as following
    the previous clause; "and" only separates. Leading connectives are stripped.
    """
    clauses: list[Clause] = []
    for sentence in sentences(text):
        sentence = sentence.rstrip(".!?").strip()
        for raw in _CLAUSE_SPLIT_RE.split(sentence):
            piece = raw.strip()
            follows = False
            changed = True
            while changed:
                changed = False
                lower = piece.lower()
                for marker in (*_FOLLOW_UP, "and", "also", "please"):
                    if lower == marker or lower.startswith(marker + " "):
                        follows = follows or marker in _FOLLOW_UP
                        piece = piece[len(marker) :].lstrip(" ,")
                        changed = True
                        break
            if piece:
                clauses.append(Clause(piece, follows))
    return clauses


def extract_urls(text: str) -> list[str]:
    """URLs in order of appearance, trailing punctuation removed."""
    return [u.rstrip(".,;:!?") for u in _URL_RE.findall(text)]


def extract_emails(text: str) -> list[str]:
    """E-mail addresses in order of appearance."""
    return [e.rstrip(".") for e in _EMAIL_RE.findall(text)]


def extract_numbers(text: str) -> list[float]:
    """Numbers in order of appearance; numbers inside URLs are skipped."""
    cleaned = _URL_RE.sub(" ", text)
    return [float(n) for n in _NUMBER_RE.findall(cleaned)]


def extract_quoted(text: str) -> list[str]:
    """Strings the user put in quotes, which usually mean "use exactly this"."""
    return [next(g for g in m if g) for m in _QUOTED_RE.findall(text)]


def extract_expression(text: str) -> str | None:
    """The longest arithmetic expression in text (e.g. "(2 + 3) * 4"), or None."""
    cleaned = _URL_RE.sub(" ", text).replace("\u00d7", "*").replace("\u00f7", "/")
    best: str | None = None
    for match in _EXPR_RE.finditer(cleaned):
        candidate = _balance(match.group(0).strip())
        if candidate and (best is None or len(candidate) > len(best)):
            best = candidate
    return best


def _balance(expr: str) -> str:
    """Drop unmatched parentheses at the edges of a regex-cut expression."""
    while expr.count("(") > expr.count(")") and expr.startswith("("):
        expr = expr[1:].strip()
    while expr.count(")") > expr.count("(") and expr.endswith(")"):
        expr = expr[:-1].strip()
    return expr


_BINARY_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitXor: operator.pow,  # "2 ^ 3" means a power to the people who type it
}


def evaluate(expression: str) -> float | None:
    """Evaluate + - * / % ^ over numbers without `eval`; None when it is not arithmetic."""
    try:
        tree = ast.parse(expression, mode="eval")
        return _eval_node(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None


def _eval_node(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval_node(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow | ast.BitXor) and abs(right) > 64:
            raise ValueError("exponent too large")
        return _BINARY_OPS[type(node.op)](left, right)
    raise ValueError("not arithmetic")


def format_number(value: float) -> str:
    """12.0 -> "12", 0.1 + 0.2 -> "0.3": numbers as a person would write them."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


def key_values(text: str) -> dict[str, str]:
    """Pairs the user spelled out: `name: Ada`, `title = "X"`, `city is Paris`.

    Keys are normalised (lower case, no separators) so they can meet schema property names.
    """
    found: dict[str, str] = {}
    pattern = re.compile(
        r"\b([A-Za-z][\w ]{0,30}?)\s*(?::|=|\bis\b|\bshould be\b)\s*"
        r"(\"[^\"]*\"|'[^']*'|[^,;\n.]+(?:\.\d+)?)",
        re.IGNORECASE,
    )
    for match in pattern.finditer(text):
        key = normalise_key(match.group(1).split()[-1] if " " in match.group(1) else match.group(1))
        value = match.group(2).strip().strip("\"'").strip()
        if key and value and key not in found and not key.startswith("http"):
            found[key] = value
    return found


def normalise_key(name: str) -> str:
    """`depends_on`, `dependsOn`, `Depends-On` -> "dependson": how names are compared."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def message_text(content: object) -> str:
    """The text of an OpenAI message `content`: a string, or a list of typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return str(content)


# Words that mean the same job, so "compute 2+2" finds a tool called `calculator` and
# "look up the weather" finds a skill tagged `forecast`. Small on purpose.
_CONCEPTS: dict[str, frozenset[str]] = {
    name: frozenset(stem(w) for w in group.split())
    for name, group in {
        "calculate": "calculate calculator compute computation math maths arithmetic add plus sum "
        "multiply times product divide division minus subtract evaluate expression equation",
        "weather": "weather temperature forecast rain sunny climate wind humidity",
        "search": "search find lookup look query google web research discover",
        "fetch": "fetch download retrieve open browse url page http website scrape crawl",
        "time": "time clock date now today timezone",
        "translate": "translate translation language french german spanish italian english",
        "summarize": "summarize summarise summary summaries tldr condense shorten digest recap",
        "write": "write draft compose author report essay article",
        "email": "email mail send inbox notify notification",
        "code": "code program script function python debug implement",
        "analyze": "analyze analyse analysis assess review inspect examine",
    }.items()
}


def concept_stems(stems: Iterable[str]) -> set[str]:
    """The stems plus a `#concept` marker for each job they name, for overlap scoring."""
    out = set(stems)
    for name, group in _CONCEPTS.items():
        if out & group:
            out.add("#" + name)
    return out
