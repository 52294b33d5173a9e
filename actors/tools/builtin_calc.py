"""`calculator`: arithmetic for a model that is bad at arithmetic, without `eval`.

The expression is parsed with `ast` and walked by a small interpreter that knows only
numbers, + - * / // % **, unary +/-, parentheses, a whitelist of `math` functions and
constants. Everything else is refused with a message that names what was refused.
Integer growth is bounded before each operation, so `9**9**9` or a long chain of
multiplications is refused instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from actorchestra.actors.tools.errors import ToolError
from actorchestra.actors.tools.registry import Tool, tool

MAX_EXPRESSION_CHARS = 1_000
MAX_NODES = 500
MAX_INT_BITS = 4_096  # about 1233 decimal digits
MAX_FACTORIAL = 1_000

Number = int | float


def _bounded_pow(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        if a.bit_length() * b > MAX_INT_BITS:
            raise ToolError(f"{a} ** {b} is too large (over {MAX_INT_BITS} bits)")
    result = operator.pow(a, b)
    if isinstance(result, complex):
        raise ToolError(f"({a}) ** ({b}) is not a real number")
    return result


def _bounded_mul(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_INT_BITS:
        raise ToolError(f"product is too large (over {MAX_INT_BITS} bits)")
    return a * b


def _factorial(n: Number) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ToolError("factorial() needs a non-negative integer")
    if n > MAX_FACTORIAL:
        raise ToolError(f"factorial() is limited to n <= {MAX_FACTORIAL}")
    return math.factorial(n)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, ndigits: int | None = None) -> Number:
    if ndigits is not None and not isinstance(ndigits, int):
        raise ToolError("round() needs an integer number of digits")
    return round(x) if ndigits is None else round(x, ndigits)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _bounded_mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _bounded_pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_SYMBOL = {
    ast.BitXor: "^ (use ** for powers)",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
}

FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
    "factorial": _factorial,
    "gcd": math.gcd,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def evaluate(expression: str) -> Number:
    """The value of `expression`, or `ToolError` saying what is wrong with it."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not a valid expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ToolError("expression is nested too deeply") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"expression has more than {MAX_NODES} parts")
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("result is too large to represent") from None
    except RecursionError:
        raise ToolError("expression is nested too deeply") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result is too large to represent (overflow) or not a number")
    return value


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolError(f"only numbers are allowed, not {node.value!r}")
        return node.value
    if isinstance(node, ast.BinOp):
        fn = _BINARY.get(type(node.op))
        if fn is None:
            raise ToolError(
                f"operator {_SYMBOL.get(type(node.op), type(node.op).__name__)} is not allowed"
            )
        return fn(_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp):
        ufn = _UNARY.get(type(node.op))
        if ufn is None:
            raise ToolError(
                f"operator {_SYMBOL.get(type(node.op), type(node.op).__name__)} is not allowed"
            )
        return ufn(_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            raise ToolError(f"{node.id} is a function; call it, e.g. {node.id}(2)")
        raise ToolError(
            f"unknown name {node.id!r}; constants: {', '.join(CONSTANTS)}; "
            f"functions: {', '.join(FUNCTIONS)}"
        )
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Attribute):
        raise ToolError(f"attribute access ('.{node.attr}') is not allowed")
    raise ToolError(f"{_describe(node)} is not allowed; use numbers, operators and functions")


def _call(node: ast.Call) -> Number:
    if isinstance(node.func, ast.Attribute):
        raise ToolError(f"attribute access ('.{node.func.attr}') is not allowed")
    if not isinstance(node.func, ast.Name):
        raise ToolError("only the listed functions can be called, by name")
    name = node.func.id
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise ToolError(f"function {name!r} is not allowed; functions: {', '.join(FUNCTIONS)}")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ToolError(f"{name}() takes plain positional arguments only")
    args = [_eval(a) for a in node.args]
    try:
        return fn(*args)
    except ToolError:
        raise
    except (ValueError, TypeError) as exc:
        raise ToolError(f"{name}({', '.join(map(str, args))}): {exc}") from None


def _describe(node: ast.AST) -> str:
    names = {
        ast.Compare: "comparison",
        ast.BoolOp: "and/or",
        ast.Subscript: "indexing",
        ast.Lambda: "lambda",
        ast.IfExp: "if/else",
        ast.List: "a list",
        ast.Tuple: "a tuple",
        ast.Dict: "a dict",
        ast.Set: "a set",
        ast.JoinedStr: "an f-string",
        ast.NamedExpr: "assignment",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a generator",
    }
    return names.get(type(node), type(node).__name__)


async def calculator(expression: str) -> Number:
    """Evaluate an arithmetic expression exactly (integers) or in floating point.

    Args:
        expression: e.g. "2**10 / 3", "sqrt(2) * pi", "log(1000, 10)", "max(3, 7) % 4".
            Operators: + - * / // % **; functions: sqrt, cbrt, exp, log, ln, log10, log2,
            sin, cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh, degrees, radians,
            hypot, floor, ceil, trunc, factorial, gcd, abs, round, min, max;
            constants: pi, e, tau.
    """
    return evaluate(expression)


def calculator_tool() -> Tool:
    """The `calculator` tool, ready to register."""
    return tool(timeout_s=5.0)(calculator)
