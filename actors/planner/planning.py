"""From a request to a plan: intent routing, LLM planning with one repair, synthesis.

The plan is asked for with structured output (a JSON schema) against the skills the
registry knows right now; the prompt lists them as a JSON array, which is also the
format the offline model server plans from. A plan that names an unknown skill or has
a cycle is sent back once with the problems; a second bad plan refuses the task.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from actorchestra.actors.batch import output_text
from actorchestra.actors.llm.client import LLMClient
from actorchestra.actors.llm.errors import LLMError
from actorchestra.actors.planner.graph import plan_problems
from actorchestra.actors.planner.models import Plan, Subtask
from actorchestra.protocol.errors import InvalidInputError

logger = logging.getLogger(__name__)

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subtasks": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "skill": {"type": "string"},
                    "input": {"type": "string"},
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["id", "skill", "input", "depends_on"],
            },
        }
    },
    "required": ["subtasks"],
}

_SYSTEM = (
    "You are the planner of a team of agents. Split the user's request into subtasks, "
    "each done by one of the skills below, and say which subtasks depend on which "
    "(a subtask that needs another's result depends on it). Use only these skills, "
    "given as a JSON array:\n{skills}\nAnswer with JSON matching the schema."
)
_SYNTH_SYSTEM = (
    "You combine the results of a team of agents into one answer to the user's request. "
    "Be faithful to the results; do not invent facts."
)
_CLAUSE = re.compile(r"\s*(?:;|,|\.\s|\band then\b|\bthen\b|\band\b)\s*", re.I)
_WORD = re.compile(r"[a-z0-9]+")


def skills_prompt(skills: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(
        [{k: s[k] for k in ("id", "name", "description", "tags") if s.get(k)} for s in skills]
    )


def route(request: str, skills: Sequence[Mapping[str, Any]]) -> Plan | None:
    """A one-clause request that clearly matches one skill goes straight to it."""
    if len([c for c in _CLAUSE.split(request) if c.strip()]) != 1:
        return None
    words = set(_WORD.findall(request.lower()))
    scored = []
    for s in skills:
        strong = set(
            _WORD.findall(" ".join([s["id"], s.get("name", ""), *s.get("tags", [])]).lower())
        )
        score = 2 * len(words & strong) + len(
            words & set(_WORD.findall(s.get("description", "").lower()))
        )
        scored.append((score, s["id"]))
    scored.sort(reverse=True)
    if not scored or scored[0][0] < 2 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None
    return Plan(
        subtasks=[Subtask(id="s1", skill=scored[0][1], input=request)], routed=True, source="route"
    )


async def llm_plan(
    llm: LLMClient,
    request: str,
    skills: Sequence[Mapping[str, Any]],
    skill_agents: Mapping[str, Sequence[str]],
    agent_skills: Mapping[str, Sequence[str]],
) -> tuple[Plan, dict[str, Any]]:
    """A validated plan from the LLM (one repair round), and the usage it cost."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": _SYSTEM.format(skills=skills_prompt(skills))},
        {"role": "user", "content": request},
    ]
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    fmt = {"type": "json_schema", "json_schema": {"name": "plan", "schema": PLAN_SCHEMA}}
    problems: list[str] = []
    for attempt in (1, 2):
        result = await llm.complete(messages, response_format=fmt, agent="planner")
        usage["prompt_tokens"] += result.usage.prompt_tokens
        usage["completion_tokens"] += result.usage.completion_tokens
        usage["cost_usd"] += result.cost_usd
        try:
            plan = Plan(
                subtasks=[Subtask(**s) for s in (result.parsed or {}).get("subtasks", [])],
                source="llm",
            )
            problems = plan_problems(plan, skill_agents, agent_skills)
        except (TypeError, ValueError) as e:
            plan, problems = Plan(subtasks=[]), [f"the plan is not in the schema: {e}"]
        if not problems:
            plan.routed = len(plan.subtasks) == 1
            return plan, usage
        logger.info("plan attempt %d rejected: %s", attempt, problems)
        messages += [
            {"role": "assistant", "content": result.text},
            {
                "role": "user",
                "content": "That plan cannot run: "
                + "; ".join(problems)
                + ". Answer again with a corrected plan.",
            },
        ]
    raise InvalidInputError("the planner could not make a valid plan: " + "; ".join(problems))


async def synthesize(
    llm: LLMClient | None, request: str, outputs: Sequence[tuple[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """One answer from the subtask outputs (LLM when configured; else the outputs joined)."""
    rendered = "\n\n".join(f"[{sid}]\n{output_text(out)}" for sid, out in outputs)
    if llm is None:
        return rendered, {}
    try:
        result = await llm.complete(
            [
                {"role": "system", "content": _SYNTH_SYSTEM},
                {"role": "user", "content": f"Request: {request}\n\nResults:\n{rendered}"},
            ],
            agent="planner",
        )
    except LLMError as e:
        # The subtasks succeeded: their joined outputs still answer the request.
        logger.warning("synthesis model unavailable, answering with the joined outputs: %s", e)
        return rendered, {"synthesis": f"joined outputs (model unavailable: {e.message})"}
    usage = {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "cost_usd": result.cost_usd,
    }
    return result.text, usage
