"""Agents used only by the integration tests (imported by the actors via PYTHONPATH)."""

from __future__ import annotations

import asyncio
import time

from actorchestra.actors.agent import Agent, SkillContext, skill


class LabAgent(Agent):
    """Failure modes on demand: slow work, a blocked event loop, a raising skill."""

    name = "lab"

    @skill(tags=["sleep", "slow"], examples=["sleep 0.5"])
    async def sleep(self, ctx: SkillContext) -> str:
        """Sleep for the number of seconds in the text (default 0.2), then answer."""
        seconds = float(ctx.text.split()[-1]) if ctx.text.split() else 0.2
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @skill(tags=["hang"])
    async def block(self, ctx: SkillContext) -> str:
        """Block the actor's event loop (a hung actor) for the seconds given."""
        seconds = float(ctx.text.split()[-1])
        time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is the point: a hung actor
        return "unblocked"

    @skill(tags=["fail"])
    async def fail(self, ctx: SkillContext) -> str:
        """Raise, to show a failing skill fails its task with the reason."""
        raise RuntimeError("the lab agent failed on purpose")

    @skill(tags=["arrow"])
    async def arrow(self, ctx: SkillContext) -> str:
        """Build an Arrow table of the numbers in the text: pyarrow, which agent processes
        leave unloaded at start, imports when a skill needs it."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.table({"n": [int(word) for word in ctx.text.split() if word.isdigit()]})
        return f"{table.num_rows} rows, sum {pc.sum(table['n']).as_py()}"
