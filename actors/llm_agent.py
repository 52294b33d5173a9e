"""`LLMAgent`: an agent written entirely in the config file, answered by a language model.

    - name: researcher
      cls: actorchestra.actors.llm_agent:LLMAgent
      options:
        role: researcher                # a preset (actors.roles), or system_prompt + skills
        model: gpt-4o-mini              # else the LLM config's per-agent or default model
        tools: [http_get, calculator, "agent:writer"]
        memory: true
        max_context_tokens: 4000

Its card lists the configured skills (not methods of a class), so it overrides the
instance hooks of `Agent`: `card_info`, `skills` and `skill_function`. Every text skill
is one streaming answer: the model's tokens coalesced into artifact chunks
(`llm_stream`), earlier turns of the context as memory (`chat_memory`), and a bounded
tool-calling loop over a `ToolRegistry`. A skill with an `output_schema` answers with
a data artifact that validates against it. Usage, cost, tool calls and what memory
kept go into the answer's metadata. Model failures raise `LLMError`s, whose messages
say which setting to fix; the executor fails the task with that message.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from actorchestra.actors.agent import Agent, Chunk, SkillContext, SkillFn
from actorchestra.actors.chat_memory import Memory, build_memory
from actorchestra.actors.llm import LLMClient, LLMResult
from actorchestra.actors.llm_agent_options import (
    AGENT_TOOL_PREFIX,
    BUILTIN_TOOLS,
    LLMAgentOptions,
    resolve_skills,
    resolve_tools,
)
from actorchestra.actors.llm_stream import CoalesceOptions, coalesce
from actorchestra.actors.roles import DEFAULT_SYSTEM_PROMPT, Role, get_role
from actorchestra.actors.spec import AgentRuntimeOptions
from actorchestra.actors.tools import Tool, ToolCallRecord, ToolRegistry, agent_tool, builtin_tools
from actorchestra.protocol.cards import AgentInfo, SkillInfo

logger = logging.getLogger(__name__)

# The caller of the skill now running, for agent tools: a tool's `send` takes only text.
_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("llm_agent_caller", default="")


def _json_safe(value: Any) -> Any:
    """`value` as plain JSON types, so it fits a protobuf Struct (metadata)."""
    return json.loads(json.dumps(value, default=str))


class _Run:
    """What one answer cost and did: summed over the model calls of the tool loop."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_text_s: float | None = None
        self.results: list[LLMResult] = []
        self.tool_calls: list[ToolCallRecord] = []
        self.memory: Memory | None = None

    def saw_text(self) -> None:
        if self.first_text_s is None:
            self.first_text_s = time.perf_counter() - self.started

    @property
    def final(self) -> LLMResult:
        return self.results[-1]

    def metadata(self) -> dict[str, Any]:
        usage = {
            "model": self.final.model,
            "prompt_tokens": sum(r.usage.prompt_tokens for r in self.results),
            "completion_tokens": sum(r.usage.completion_tokens for r in self.results),
            "total_tokens": sum(r.usage.total_tokens for r in self.results),
            "cost_usd": sum(r.cost_usd for r in self.results),
            "latency_s": round(time.perf_counter() - self.started, 6),
            "first_token_s": self.first_text_s,
            "model_calls": len(self.results),
            "attempts": sum(r.attempts for r in self.results),  # retries included
            "finish_reason": self.final.finish_reason,
        }
        out: dict[str, Any] = {"llm": usage}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "name": r.name,
                    "arguments": r.arguments,
                    "ok": r.ok,
                    "output": r.content()[:500],
                    "duration_ms": round(r.duration_ms, 3),
                }
                for r in self.tool_calls
            ]
        if self.memory is not None:
            out["memory"] = self.memory.stats()
        return _json_safe(out)


class LLMAgent(Agent):
    """An agent whose skills, prompt and tools come from its config options."""

    name = "llm"
    description = "An agent backed by a language model."

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.config = LLMAgentOptions.parse(options)
        self.role: Role | None = get_role(self.config.role) if self.config.role else None
        self._skill_options = resolve_skills(self.config, self.role)
        self._skills = {s.id: s.info() for s in self._skill_options.values()}
        self.system_prompt = (
            self.config.system_prompt
            or (self.role.system_prompt if self.role else None)
            or DEFAULT_SYSTEM_PROMPT
        )
        self.tool_names = resolve_tools(self.config, self.role)
        self._coalesce = CoalesceOptions(
            max_chars=self.config.stream_chunk_chars,
            max_wait_s=self.config.stream_flush_ms / 1000.0,
        )
        self._llm: LLMClient | None = None
        self.tools = ToolRegistry()

    # -- the card and skill routing: from the options, not from methods -------------------

    @classmethod
    def agent_info(cls, name: str | None = None, description: str | None = None) -> AgentInfo:
        """The card of an LLM agent with no options (one `chat` skill).

        A configured agent's card depends on its options: the actor asks the instance
        (`card_info`); this is for code that only has the class.
        """
        return cls().card_info(name, description)

    def skills(self) -> dict[str, SkillInfo]:  # type: ignore[override]
        """The configured skills (an instance's, where the base class reads its methods)."""
        return dict(self._skills)

    def card_info(self, name: str | None = None, description: str | None = None) -> AgentInfo:
        return AgentInfo(
            name=name or self.agent_name,
            description=description
            or (self.role.description if self.role else "")
            or type(self).description,
            version=self.version,
            skills=list(self._skills.values()),
        )

    def skill_function(self, skill_id: str) -> SkillFn:
        if skill_id not in self._skill_options:
            raise KeyError(skill_id)
        if self._skill_options[skill_id].output_schema is not None:
            return self.answer_data
        return self.answer_text

    # -- setup: clients from the runtime options, not at import or construction ------------

    async def setup(self) -> None:
        """Build the model client and the tools from the runtime's shared configuration."""
        runtime = self.runtime or AgentRuntimeOptions()
        self._llm = LLMClient(runtime.llm)
        builtins = tuple(n for n in self.tool_names if n in BUILTIN_TOOLS)
        tools: list[Tool] = builtin_tools(runtime.tools, include=builtins) if builtins else []
        for n in self.tool_names:
            if n.startswith(AGENT_TOOL_PREFIX):
                tools.append(self._agent_tool(n.removeprefix(AGENT_TOOL_PREFIX)))
        self.tools = ToolRegistry.from_config(runtime.tools, tools)
        logger.info(
            "LLM agent %s: model %s, tools %s",
            self.agent_name,
            self.config.model or runtime.llm.model_for(self.agent_name),
            self.tools.names() or "none",
        )

    def _agent_tool(self, target: str) -> Tool:
        from actorchestra.actors.agent_links import local_agent_sender  # Ray, only if used

        send_as = local_agent_sender(target)

        async def send(text: str) -> str:
            return await send_as(text, _CALLER.get())

        return agent_tool(
            f"ask_{target}",
            f"Ask the {target} agent: send it a request in plain language and get its "
            "answer as text.",
            send,
        )

    @property
    def llm(self) -> LLMClient:
        if self._llm is None:
            raise RuntimeError("LLMAgent.setup() has not run; the actor calls it first")
        return self._llm

    # -- answering ----------------------------------------------------------------------

    async def answer_text(self, ctx: SkillContext) -> AsyncIterator[Chunk]:
        """Stream the model's answer (coalesced) to a streaming caller; one chunk otherwise."""
        run = _Run()
        token = _CALLER.set(ctx.user)
        try:
            pieces = self._loop(ctx, run, stream=ctx.streaming)
            if ctx.streaming:
                async for chunk in coalesce(pieces, self._coalesce):
                    if chunk.last:
                        ctx.result_metadata.update(run.metadata())
                    yield chunk
                return
            text = "".join([p async for p in pieces])
            ctx.result_metadata.update(run.metadata())
            yield Chunk(text, last=True)
        finally:
            _CALLER.reset(token)

    async def answer_data(self, ctx: SkillContext) -> Any:
        """Answer with JSON matching the skill's `output_schema` (a data artifact)."""
        schema = self._skill_options[ctx.skill_id].output_schema
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": re.sub(r"[^A-Za-z0-9_-]", "_", ctx.skill_id), "schema": schema},
        }
        run = _Run()
        token = _CALLER.set(ctx.user)
        try:
            async for _ in self._loop(ctx, run, stream=False, response_format=response_format):
                pass
        finally:
            _CALLER.reset(token)
        ctx.result_metadata.update(run.metadata())
        return run.final.parsed

    def _messages(self, ctx: SkillContext, run: _Run) -> list[dict[str, Any]]:
        system = self.system_prompt
        instructions = self._skill_options[ctx.skill_id].instructions
        if instructions:
            system = f"{system}\n\n{instructions}"
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        if self.config.memory:
            run.memory = build_memory(ctx.conversation, self.config.max_context_tokens)
            messages += run.memory.messages
        text = ctx.text
        for value in ctx.data:
            text += "\n" + json.dumps(value, ensure_ascii=False)
        messages.append({"role": "user", "content": text})
        return messages

    async def _loop(
        self,
        ctx: SkillContext,
        run: _Run,
        *,
        stream: bool,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        """Ask the model, run the tools it asks for, ask again; yields answer text pieces.

        At most `max_tool_rounds` rounds offer tools; the round after that offers none,
        so the model has to answer with what it has.
        """
        messages = self._messages(ctx, run)
        offered = self.tools.to_openai_tools() if len(self.tools) else None
        for round_no in range(self.config.max_tool_rounds + 1):
            tools = offered if round_no < self.config.max_tool_rounds else None
            request: dict[str, Any] = {
                "model": self.config.model,
                "agent": self.agent_name,
                "tools": tools,
                "response_format": response_format,
                "max_tokens": self.config.max_tokens,
                "temperature": self.config.temperature,
            }
            if stream:
                result: LLMResult | None = None
                # Closed at once if the caller stops early: it holds an HTTP response.
                async with contextlib.aclosing(self.llm.stream(messages, **request)) as deltas:
                    async for delta in deltas:
                        if delta.result is not None:
                            result = delta.result
                        elif delta.text:
                            run.saw_text()
                            yield delta.text
                assert result is not None, "LLMClient.stream ends with the result"
            else:
                result = await self.llm.complete(messages, **request)
                if result.text and response_format is None:
                    run.saw_text()
                    yield result.text
            run.results.append(result)
            if not result.tool_calls:
                return
            messages.append(result.assistant_message())
            for call in result.tool_calls:
                await ctx.progress(f"calling tool {call.name}")
                record = await self.tools.call(call.name, call.arguments, call_id=call.id)
                run.tool_calls.append(record)
                outcome = "returned" if record.ok else "failed"
                await ctx.progress(f"tool {call.name} {outcome}: {record.content()[:200]}")
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": record.content()}
                )
