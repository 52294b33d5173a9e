"""Example agents that ship with the default config; they need no LLM."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from actorchestra.actors.agent import Agent, NeedsInput, SkillContext, skill


class EchoAgent(Agent):
    """Answers with the text it was sent. The baseline for throughput benchmarks."""

    name = "echo"

    @skill(tags=["echo", "test"], examples=["hello"])
    async def echo(self, ctx: SkillContext) -> str:
        """Return the message text unchanged."""
        return ctx.text


class TextAgent(Agent):
    """Small text utilities: counting, case, and a slow streamed count for demos."""

    name = "text"

    @skill(tags=["text", "count", "words"], examples=["count the words in: a b c"])
    async def word_count(self, ctx: SkillContext) -> dict[str, int]:
        """Count the words and characters of the text."""
        body = ctx.text.split(":", 1)[-1] if ":" in ctx.text else ctx.text
        return {"words": len(body.split()), "characters": len(body.strip())}

    @skill(tags=["text", "uppercase", "shout"], examples=["uppercase: hello"])
    async def uppercase(self, ctx: SkillContext) -> str:
        """Return the text in upper case."""
        return ctx.text.split(":", 1)[-1].strip().upper()

    @skill(
        tags=["stream", "count", "slow"],
        examples=["stream 5"],
        description="Stream the numbers 1..N, one chunk each, a short pause between them.",
    )
    async def stream(self, ctx: SkillContext) -> AsyncIterator[str]:
        match = re.search(r"\d+", ctx.text)
        n = int(match.group()) if match else 5
        delay = float(ctx.metadata.get("delay", 0.05))
        for i in range(1, n + 1):
            await ctx.progress(f"counted {i} of {n}")
            yield f"{i}\n"
            await asyncio.sleep(delay)

    @skill(tags=["greet", "multi-turn"], examples=["greet me"])
    async def greet(self, ctx: SkillContext) -> str | NeedsInput:
        """Ask for the caller's name, then greet them by it (a two-turn task)."""
        if not ctx.history:
            return NeedsInput("What is your name?")
        return f"Hello, {ctx.text.strip()}!"


class SleepAgent(Agent):
    """Sleeps for a while and says so: a stand-in for work of known length (benchmarks)."""

    name = "sleeper"

    @skill(tags=["sleep", "wait", "benchmark"], examples=["0.05"])
    async def sleep(self, ctx: SkillContext) -> str:
        """Sleep for the seconds given first in the text (0 if none), then answer."""
        words = ctx.text.split()
        try:
            seconds = float(words[0]) if words else 0.0
        except ValueError:
            seconds = 0.0
        if seconds > 0:
            await asyncio.sleep(seconds)
        return f"slept {seconds:g}"
