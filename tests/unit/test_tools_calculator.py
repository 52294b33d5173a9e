"""`calculator`: arithmetic a model can trust, and nothing else."""

from __future__ import annotations

import math

import pytest

from actorchestra.actors.tools import ToolError, ToolRegistry, calculator_tool
from actorchestra.actors.tools.builtin_calc import evaluate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 10", 1024),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("7 / 2", 3.5),
        ("-3 + +4", 1),
        ("sqrt(16)", 4.0),
        ("log(1000, 10)", pytest.approx(3.0)),
        ("max(3, 7, 5) - min(2, 9)", 5),
        ("round(2.567, 2)", 2.57),
        ("abs(-4) * pi", pytest.approx(4 * math.pi)),
        ("sin(pi / 2) + cos(0)", pytest.approx(2.0)),
        ("exp(1) - e", pytest.approx(0.0)),
        ("factorial(10)", 3628800),
        ("2 ** 0.5", pytest.approx(math.sqrt(2))),
        ("1e3 + 0.5", 1000.5),
        ("10 ** 300 * 10 ** 300", 10**600),
    ],
)
def test_evaluates(expression: str, expected: object) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "attribute access ('.system') is not allowed"),
        ("__import__('os')", "function '__import__' is not allowed"),
        ("open('/etc/passwd')", "function 'open' is not allowed"),
        ("eval('1')", "function 'eval' is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("math.pi", "attribute access ('.pi') is not allowed"),
        ("(1).__class__", "attribute access ('.__class__') is not allowed"),
        ("9 ** 9 ** 9", "is too large"),
        ("2 ** 100000", "is too large"),
        ("factorial(100000)", "factorial() is limited"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("10.0 ** 1000", "too large"),
        ("(-8) ** (1/3)", "not a real number"),
        ("2 ^ 3", "use ** for powers"),
        ("1 < 2", "comparison is not allowed"),
        ("[1, 2][0]", "is not allowed"),
        ("lambda: 1", "lambda is not allowed"),
        ("'a' * 3", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("sqrt", "is a function"),
        ("max(x=1)", "plain positional arguments only"),
        ("1 +", "not a valid expression"),
        ("1" + "+1" * 600, "longer than"),
    ],
)
def test_refuses_with_a_message(expression: str, message: str) -> None:
    with pytest.raises(ToolError) as info:
        evaluate(expression)
    assert message in info.value.message


async def test_calculator_through_the_registry() -> None:
    registry = ToolRegistry([calculator_tool()])
    ok = await registry.call("calculator", '{"expression": "6 * 7"}')
    assert ok.result == 42 and ok.content() == "42"
    bad = await registry.call("calculator", {"expression": "os.getcwd()"})
    assert bad.error is not None and "attribute access" in bad.error
