"""Plans as graphs: built from explicit workflows, checked before anything runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from actorchestra.actors.planner.models import Plan, Subtask, Workflow
from actorchestra.actors.trusted import trusted


def plan_from_workflow(workflow: Workflow, task_input: str) -> Plan:
    """The plan an explicit workflow describes.

    `sequential`: each step depends on the one before (and gets its output);
    `parallel`: steps are independent unless they say otherwise; `graph`: steps
    depend on exactly what their `depends_on` names. A step without `input` works
    on the task's input.
    """
    subtasks: list[Subtask] = []
    previous: str | None = None
    for index, step in enumerate(workflow.steps, start=1):
        step_id = step.id or f"s{index}"
        depends = list(step.depends_on)
        if workflow.kind == "sequential" and previous is not None and previous not in depends:
            depends.append(previous)
        subtasks.append(
            # The steps are validated already: a thousand-step workflow is not checked twice.
            trusted(
                Subtask,
                id=step_id,
                skill=step.skill,
                agent=step.agent,
                input=step.input or task_input,
                depends_on=depends,
                optional=step.optional,
            )
        )
        previous = step_id
    return Plan(subtasks=subtasks, source="workflow")


def plan_problems(
    plan: Plan, skills: Mapping[str, Iterable[str]], agents: Mapping[str, Iterable[str]]
) -> list[str]:
    """Everything wrong with `plan`, each a sentence that says what to fix.

    `skills` maps skill ids to the agents offering them, `agents` agent names to
    their skill ids: what the registry knows right now.
    """
    problems: list[str] = []
    if not plan.subtasks:
        return ["the plan has no subtasks"]
    ids = [s.id for s in plan.subtasks]
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            problems.append(f"subtask id {sid!r} is used twice; ids must be unique")
        seen.add(sid)
    known_skills = sorted(skills)
    for s in plan.subtasks:
        if s.skill and s.skill not in skills:
            problems.append(
                f"subtask {s.id!r} names unknown skill {s.skill!r}; known skills: "
                f"{', '.join(known_skills) or 'none'}"
            )
        if s.agent and s.agent not in agents:
            problems.append(
                f"subtask {s.id!r} names unknown agent {s.agent!r}; known agents: "
                f"{', '.join(sorted(agents)) or 'none'}"
            )
        elif s.agent and s.skill and s.skill not in set(agents[s.agent]):
            problems.append(
                f"agent {s.agent!r} does not offer skill {s.skill!r} (subtask {s.id!r})"
            )
        if not s.skill and not s.agent:
            problems.append(f"subtask {s.id!r} names neither a skill nor an agent")
        for dep in s.depends_on:
            if dep == s.id:
                problems.append(f"subtask {s.id!r} depends on itself")
            elif dep not in seen:
                problems.append(f"subtask {s.id!r} depends on unknown subtask {dep!r}")
    cycle = find_cycle(plan)
    if cycle:
        problems.append("the plan has a cycle: " + " -> ".join([*cycle, cycle[0]]))
    return problems


def find_cycle(plan: Plan) -> list[str]:
    """One dependency cycle (as a list of ids), or [] when the graph is acyclic.

    Iterative depth-first search: a long sequential workflow must not hit the
    interpreter's recursion limit.
    """
    # Steps listed after everything they depend on (as workflows mostly are) cannot form
    # a cycle: one pass tells, and the search below is for the rest.
    position: dict[str, int] = {}
    for s in plan.subtasks:
        position.setdefault(s.id, len(position))
    if all(position.get(d, -1) < position[s.id] for s in plan.subtasks for d in s.depends_on):
        return []
    deps = {s.id: [d for d in s.depends_on if d != s.id] for s in plan.subtasks}
    color: dict[str, int] = {}  # 1 on the path, 2 done
    for root in deps:
        if root in color:
            continue
        path: list[str] = [root]
        iters = [iter(deps[root])]
        color[root] = 1
        while iters:
            dep = next(iters[-1], None)
            if dep is None:
                color[path.pop()] = 2
                iters.pop()
                continue
            if dep not in deps:
                continue
            if color.get(dep) == 1:
                return path[path.index(dep) :]
            if dep not in color:
                color[dep] = 1
                path.append(dep)
                iters.append(iter(deps[dep]))
    return []
