"""Cycle detection: the in-order shortcut and the search agree."""

from __future__ import annotations

from actorchestra.actors.planner.graph import find_cycle
from actorchestra.actors.planner.models import Plan, Subtask


def plan(*steps: tuple[str, list[str]]) -> Plan:
    return Plan(subtasks=[Subtask(id=i, skill="s", input="x", depends_on=d) for i, d in steps])


def test_steps_after_their_inputs_have_no_cycle() -> None:
    fan = [(f"m{i}", []) for i in range(50)]
    assert find_cycle(plan(*fan, ("reduce", [f"m{i}" for i in range(50)]))) == []


def test_steps_before_their_inputs_are_searched() -> None:
    # listed out of order, still acyclic
    assert find_cycle(plan(("c", ["b"]), ("b", ["a"]), ("a", []))) == []
    # an in-order prefix, then a cycle among later steps
    cycle = find_cycle(plan(("a", []), ("b", ["a", "d"]), ("c", ["b"]), ("d", ["c"])))
    assert sorted(cycle) == ["b", "c", "d"]
    # a step that names itself: reported apart by plan_problems, not as a cycle here
    assert find_cycle(plan(("a", ["a"]), ("b", ["a"]))) == []
