"""Role presets for LLM agents: a system prompt, the skills a card shows, default tools.

A config file names a role (`options: {role: researcher}`) instead of writing a prompt
and a skill list for every agent; anything the options set explicitly (`system_prompt`,
`skills`, `tools`) replaces the preset's. The four shipped here are examples as much as
presets: copy one into a config and change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actorchestra.protocol.cards import SkillInfo
from actorchestra.protocol.errors import ConfigError


@dataclass(frozen=True)
class Role:
    """What a role preset gives an LLM agent unless its options say otherwise."""

    name: str
    description: str
    system_prompt: str
    skills: tuple[SkillInfo, ...]
    tools: tuple[str, ...] = field(default=())


_ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            name="researcher",
            description="Finds facts, fetches pages and checks numbers, and says where "
            "each claim comes from.",
            system_prompt=(
                "You are a careful research assistant. Answer with facts you can support: "
                "fetch a page with the http_get tool when the question names a URL or needs "
                "current information, and use the calculator tool for any arithmetic. Say "
                "which source each claim comes from, separate what you found from what you "
                "infer, and say plainly when you could not find something."
            ),
            skills=(
                SkillInfo(
                    id="research",
                    name="research",
                    description="Answer a question with sourced facts, fetching pages "
                    "and checking numbers as needed.",
                    tags=["research", "facts", "search", "web", "sources"],
                    examples=[
                        "What does https://example.com say about its purpose?",
                        "Compare the populations of Oslo and Bergen and the ratio between them.",
                    ],
                ),
                SkillInfo(
                    id="summarize",
                    name="summarize",
                    description="Summarise a text or a page into its key points.",
                    tags=["summary", "summarize", "tldr", "digest"],
                    examples=["Summarise: <text>", "Give me the key points of https://example.com"],
                ),
            ),
            tools=("http_get", "calculator"),
        ),
        Role(
            name="writer",
            description="Drafts and rewrites prose: articles, emails, announcements, docs.",
            system_prompt=(
                "You are a clear, concise writer. Write for the reader the request names "
                "(or an intelligent non-specialist), lead with the point, prefer short "
                "sentences and concrete words, and keep the requested length and format. "
                "When rewriting, keep the author's meaning and say what you changed only "
                "if asked."
            ),
            skills=(
                SkillInfo(
                    id="write",
                    name="write",
                    description="Draft a piece of writing from a brief.",
                    tags=["write", "draft", "article", "email", "blog"],
                    examples=[
                        "Write a 100-word announcement for our new release.",
                        "Draft a polite email declining a meeting.",
                    ],
                ),
                SkillInfo(
                    id="edit",
                    name="edit",
                    description="Rewrite a text to be clearer, shorter or in another tone.",
                    tags=["edit", "rewrite", "proofread", "tone"],
                    examples=["Make this paragraph shorter and friendlier: <text>"],
                ),
            ),
        ),
        Role(
            name="coder",
            description="Writes, explains and checks code; runs Python to verify its answers.",
            system_prompt=(
                "You are an experienced software engineer. Give working, minimal code with "
                "a short explanation. When a result can be checked by running code, run it "
                "with the python tool and report the actual output; use the calculator tool "
                "for quick arithmetic. Point out edge cases and say which assumptions you "
                "made."
            ),
            skills=(
                SkillInfo(
                    id="code",
                    name="code",
                    description="Write or fix code for a described task.",
                    tags=["code", "python", "program", "implement", "debug"],
                    examples=[
                        "Write a Python function that merges two sorted lists.",
                        "Why does this loop never end? <code>",
                    ],
                ),
                SkillInfo(
                    id="run",
                    name="run python",
                    description="Compute an answer by running a short Python program.",
                    tags=["run", "execute", "compute", "python"],
                    examples=["Run python to find the 20th Fibonacci number."],
                ),
            ),
            tools=("python", "calculator"),
        ),
        Role(
            name="reviewer",
            description="Reviews text or code and returns specific, prioritised feedback.",
            system_prompt=(
                "You are a rigorous reviewer. Read the submitted text or code closely and "
                "give specific, actionable feedback ordered by importance: correctness "
                "first, then clarity, then style. Quote the part each comment is about, "
                "suggest a fix, and say what is good as well as what is not."
            ),
            skills=(
                SkillInfo(
                    id="review",
                    name="review",
                    description="Review a text or code change and list concrete issues "
                    "with suggested fixes.",
                    tags=["review", "feedback", "critique", "check"],
                    examples=[
                        "Review this function for bugs: <code>",
                        "Give feedback on this draft: <text>",
                    ],
                ),
            ),
        ),
    )
}

DEFAULT_SKILL = SkillInfo(
    id="chat",
    name="chat",
    description="Answer a message, remembering earlier turns of the conversation.",
    tags=["chat", "llm"],
    examples=["Hello! What can you do?"],
)
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer accurately and concisely."


def role_names() -> list[str]:
    """The preset names a config may use."""
    return sorted(_ROLES)


def get_role(name: str) -> Role:
    """The preset called `name`; ConfigError naming the known ones otherwise."""
    try:
        return _ROLES[name]
    except KeyError:
        raise ConfigError(
            f"unknown LLM agent role {name!r}; known roles: {', '.join(role_names())} "
            "(or leave out `role` and set `system_prompt` and `skills`)"
        ) from None
