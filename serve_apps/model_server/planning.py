"""Planning: split a request into clauses and give each the skill that matches it best.

The prompt format the offline model recognises (documented in the package docstring):
a system (or developer) message that contains a JSON array of skills, each an object
with an `"id"` and a `"name"` or `"description"` (optional `"tags"` list and `"agent"`).
An array of agents, each `{"name": ..., "skills": [...]}`, is read as the skills of
those agents. The last user message is the request. The plan is

    {"subtasks": [{"id": "t1", "skill": "<skill id>", "agent": "<agent, if known>",
                   "input": "<clause>", "depends_on": [], "reason": "..."}]}

poured into the caller's `response_format` schema when one is given (property names are
matched loosely: `steps`/`tasks` for `subtasks`, `dependencies` for `depends_on`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actorchestra.serve_apps.model_server import text as t


@dataclass(frozen=True)
class Skill:
    """A skill as a planner advertises it to the model."""

    id: str
    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    agent: str | None = None

    def stems(self) -> tuple[set[str], set[str]]:
        """(strong, weak) stems: id, name and tags count double; the description once."""
        strong = t.content_stems(" ".join([self.id, self.name, *self.tags]))
        weak = t.content_stems(self.description)
        return t.concept_stems(strong), t.concept_stems(weak)


def find_skills(system_texts: Sequence[str]) -> list[Skill]:
    """Skills listed as a JSON array anywhere in the system/developer messages."""
    decoder = json.JSONDecoder()
    skills: list[Skill] = []
    for text in system_texts:
        pos = text.find("[")
        while pos != -1:
            try:
                value, end = decoder.raw_decode(text, pos)
            except ValueError:
                pos = text.find("[", pos + 1)
                continue
            found = _skills_from(value, agent=None)
            skills.extend(found)
            pos = text.find("[", end if found else pos + 1)
    unique: dict[tuple[str | None, str], Skill] = {}
    for skill in skills:
        unique.setdefault((skill.agent, skill.id), skill)
    return list(unique.values())


def _skills_from(value: Any, agent: str | None) -> list[Skill]:
    if not isinstance(value, list) or not value or not all(isinstance(v, Mapping) for v in value):
        return []
    out: list[Skill] = []
    for item in value:
        if isinstance(item.get("skills"), list):
            out.extend(_skills_from(item["skills"], agent=str(item.get("name") or item.get("id"))))
            continue
        if "id" not in item or not ("name" in item or "description" in item):
            return []
        tags = item.get("tags") or []
        out.append(
            Skill(
                id=str(item["id"]),
                name=str(item.get("name") or item["id"]),
                description=str(item.get("description") or ""),
                tags=tuple(str(tag) for tag in tags) if isinstance(tags, list) else (),
                agent=str(item["agent"]) if item.get("agent") else agent,
            )
        )
    return out


def skill_score(skill: Skill, clause: str) -> int:
    """2 per shared id/name/tag word, 1 per shared description word, +1 for the verb.

    The verb bonus breaks the common tie in "translate the summary": the clause's first
    word says what to do, the rest says what to do it to.
    """
    wanted = t.concept_stems(t.content_stems(clause))
    strong, weak = skill.stems()
    score = 2 * len(wanted & strong) + len(wanted & (weak - strong))
    if score and verb_matches(skill, clause):
        score += 1
    return score


def verb_matches(skill: Skill, clause: str) -> bool:
    """Whether the clause's first meaningful word names what the skill does."""
    stems = t.content_stems(clause)
    strong, weak = skill.stems()
    return bool(stems) and bool(t.concept_stems(stems[:1]) & (strong | weak))


def best_skill(skills: Sequence[Skill], clause: str) -> tuple[Skill, int]:
    """The best-scoring skill for a clause; the first listed wins ties."""
    scored = [(skill_score(skill, clause), -i, skill) for i, skill in enumerate(skills)]
    score, _, skill = max(scored, key=lambda item: (item[0], item[1]))
    return skill, score


def plan(request: str, skills: Sequence[Skill]) -> dict[str, Any]:
    """A plan for `request` over `skills`, in the documented canonical shape.

    Clauses that match no skill, or only the previous subtask's skill without naming its
    verb, are folded into the previous subtask ("Paris, France" is not two steps); a
    clause introduced by "then" depends on the subtask before it.
    """
    if not skills:
        return {"subtasks": []}
    subtasks: list[dict[str, Any]] = []
    pending = ""
    for clause in t.split_clauses(request) or [t.Clause(request.strip() or "help", False)]:
        skill, score = best_skill(skills, clause.text)
        same_job = (
            subtasks and subtasks[-1]["skill"] == skill.id and not verb_matches(skill, clause.text)
        )
        if score == 0 or (same_job and not clause.follows_previous):
            if subtasks and not clause.follows_previous:
                subtasks[-1]["input"] += ", " + clause.text
            else:
                pending = f"{pending} {clause.text}".strip()
            continue
        text = f"{pending}, {clause.text}" if pending else clause.text
        pending = ""
        depends = [subtasks[-1]["id"]] if clause.follows_previous and subtasks else []
        subtasks.append(_subtask(len(subtasks) + 1, skill, text, depends, score))
    if pending:
        if subtasks:
            subtasks[-1]["input"] += ", " + pending
        else:
            skill, score = best_skill(skills, request)
            subtasks.append(_subtask(1, skill, pending, [], score))
    return {"subtasks": subtasks}


def _subtask(
    number: int,
    skill: Skill,
    text: str,
    depends: list[str],
    score: int,
) -> dict[str, Any]:
    matched = sorted(
        w
        for w in set(t.content_stems(text)) & (skill.stems()[0] | skill.stems()[1])
        if not w.startswith("#")
    )
    reason = (
        f"matches skill '{skill.name}' on: {', '.join(matched)}"
        if matched
        else f"closest skill is '{skill.name}'"
        if score
        else f"default skill '{skill.name}'"
    )
    subtask: dict[str, Any] = {"id": f"t{number}", "skill": skill.id}
    if skill.agent:
        subtask["agent"] = skill.agent
    subtask.update({"input": text, "depends_on": depends, "reason": reason})
    return subtask
