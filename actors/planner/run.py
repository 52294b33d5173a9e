"""One task's run: dispatch ready subtasks in batches, follow the graph, finish.

Scheduling is event driven: whenever a subtask finishes, its dependants whose inputs
are all in become ready, and `_schedule` sends everything ready in one sweep, grouped
per (agent, skill) into batch messages. A sweep runs synchronously, so every subtask
that became ready in the same loop turn travels in the same batch.

Agents are chosen by skill and load (subtasks outstanding over capacity, where
capacity is the agent's concurrency times its replicas). A failed, timed-out or
unreachable subtask is retried, on another agent with the skill when there is one
(the endpoint itself avoids a replica it just saw fail), up to `max_attempts`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actorchestra.actors.batch import output_text, with_results
from actorchestra.actors.planner.dispatch import Item, Outcome, cancel_remote, send_batch, send_one
from actorchestra.actors.planner.events import EventLog
from actorchestra.actors.planner.models import (
    EventKind,
    Plan,
    Subtask,
    SubtaskState,
    SubtaskView,
)
from actorchestra.actors.trusted import trusted
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.endpoint import AgentEndpoint
from actorchestra.protocol.errors import ActorchestraError

logger = logging.getLogger(__name__)

MAX_BATCH = 256
MIN_SPLIT = 64  # items a message keeps before a sweep is split (no concurrency limit)
# How long an agent may hold the result of a batch item that nothing needs soon, to send
# it with others: subtasks finishing one at a time (an agent with a concurrency limit)
# each cost an A2A artifact event, about 1 ms of CPU across agent, planner and Ray
# here. "Nothing needs it soon": no subtask depends on it, or each one that does waits
# on at least HOLD_FAN_IN subtasks (a reduce over many maps needs the last of them, and
# a batch's last result always goes at once). Failures are never held, and the
# subtask's finish time is the agent's, so mostly progress events come later; at worst
# a wide fan-in starts RESULT_HOLD_S late, when its last input finishes mid-batch.
RESULT_HOLD_S = 0.25
HOLD_FAN_IN = 8
_PREVIEW = 500  # characters of an output carried in events


@dataclass
class AgentInfo:
    name: str
    skills: set[str]
    capacity: int  # concurrency x replicas (a large number when unlimited)
    endpoint: AgentEndpoint
    replicas: int = 1
    healthy: bool = True
    load: int = 0  # subtasks outstanding from this planner
    concurrency: int | None = None  # per replica; None: no limit
    batches: bool = True  # takes `actorchestra.batch` messages (a third-party agent does not)

    def messages_for(self, items: int, cpus: int) -> int:
        """How many batch messages `items` subtasks for this agent travel in.

        An agent that runs one item (or a few) at a time needs them spread over every
        replica. One without a limit runs them all at once wherever they land: spread
        over more processes than the cluster has CPUs, they run no sooner and each
        message costs a full A2A task lifecycle on the agent (a concurrent fan-out of
        1,000 here, on 2 CPUs: 16 messages of 63 took 360-370 ms, 4 of 250 220-330 ms),
        so it gets one message per CPU, at most one per replica, and no fewer than
        MIN_SPLIT items a message: starting a message costs the agent about as much CPU
        as starting a hundred items (2.5 ms against 25 us an item here), so a small
        sweep split in two waits for the slower of two starts (a 4 x 25 graph, each
        layer in one message instead of two of 12: median 239 against 258 ms). Never
        more than MAX_BATCH items in one message. An agent that takes no batches gets
        one plain message per subtask.
        """
        if not self.batches:
            return items
        spread = items if self.concurrency else min(cpus, -(-items // MIN_SPLIT))
        return max(-(-items // MAX_BATCH), min(items, spread, self.replicas))


class Pool:
    """The agents a planner can send work to, and how loaded each is."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentInfo] = {}
        self.cpus = os.cpu_count() or 1  # to run them on (the planner sets the cluster's)

    def choose(self, sub: Subtask, exclude: set[str]) -> AgentInfo | None:
        if sub.agent:
            agent = self.agents.get(sub.agent)
            return agent
        # Healthy before unhealthy, then not yet tried before tried, then least loaded:
        # one pass (this runs once per subtask dispatched).
        skill = sub.skill or ""
        best, best_key = None, None
        for a in self.agents.values():
            if skill not in a.skills:
                continue
            key = (not a.healthy, a.name in exclude, (a.load + 1) / a.capacity)
            if best_key is None or key < best_key:
                best, best_key = a, key
        return best


@dataclass
class SubRun:
    spec: Subtask
    position: int
    state: SubtaskState = SubtaskState.WAITING
    agent: str | None = None
    attempts: int = 0
    output: Any = None
    error: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    waiting_on: int = 0
    dependants: list[str] = field(default_factory=list)
    hold_s: float | None = None  # how long the agent may hold its result (see RESULT_HOLD_S)
    tried: set[str] = field(default_factory=set)
    ahead: AgentInfo | None = None  # sent ahead of its inputs to this agent (see `_ahead`)

    def view(self) -> SubtaskView:
        # Built from the run's own typed state: no revalidation (a thousand-subtask task
        # took 47 ms to validate, in the planner's loop, right after its final event).
        return trusted(
            SubtaskView,
            id=self.spec.id,
            skill=self.spec.skill,
            agent=self.agent,
            state=self.state,
            input=self.spec.input,
            depends_on=list(self.spec.depends_on),
            attempts=self.attempts,
            output=self.output,
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


@dataclass
class RunOptions:
    max_parallel: int = 100_000
    subtask_timeout_s: float | None = 300.0
    max_attempts: int = 3


class TaskRun:
    """Runs `plan` to the end; `done` resolves when every subtask is settled."""

    def __init__(
        self,
        task_id: str,
        plan: Plan,
        pool: Pool,
        events: EventLog,
        options: RunOptions,
        call: CallInfo,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.task_id = task_id
        self.plan = plan
        self.pool = pool
        self.events = events
        self.options = options
        self.call = call
        self.on_change = on_change
        self.subs = {s.id: SubRun(s, i) for i, s in enumerate(plan.subtasks)}
        for sub in self.subs.values():
            sub.waiting_on = len(sub.spec.depends_on)
            for dep in sub.spec.depends_on:
                self.subs[dep].dependants.append(sub.spec.id)
        for sub in self.subs.values():
            if all(self.subs[d].waiting_on >= HOLD_FAN_IN for d in sub.dependants):
                sub.hold_s = RESULT_HOLD_S
        self.ready: deque[str] = deque(s.spec.id for s in self.subs.values() if not s.waiting_on)
        self.in_flight = 0
        self.unsettled = len(self.subs)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._remote: dict[str, tuple[AgentEndpoint, set[str]]] = {}  # a2a task id -> items
        self._canceled = False
        self._sweep_pending = False

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if not self.subs:
            self.done.set_result(None)
            return
        self._schedule()

    async def cancel(self) -> None:
        """Stop dispatching, cancel every running subtask on its agent (A2A CancelTask)."""
        self._canceled = True
        remote = list(self._remote.items())
        await asyncio.gather(
            *(cancel_remote(endpoint, a2a_id, self.call) for a2a_id, (endpoint, _) in remote)
        )
        for task in list(self._tasks):
            task.cancel()
        now = time.time()
        for sub in self.subs.values():
            if sub.state not in (SubtaskState.COMPLETED, SubtaskState.FAILED, SubtaskState.SKIPPED):
                sub.state, sub.finished_at = SubtaskState.CANCELED, now
        if not self.done.done():
            self.done.set_result(None)

    def failed_required(self) -> list[SubRun]:
        return [
            s for s in self.subs.values() if s.state == SubtaskState.FAILED and not s.spec.optional
        ]

    # -- scheduling -------------------------------------------------------------------

    def _input_for(self, sub: SubRun) -> str:
        if not sub.spec.depends_on:
            return sub.spec.input
        return with_results(
            sub.spec.input,
            (
                (dep, output_text(self.subs[dep].output))
                for dep in sub.spec.depends_on
                if self.subs[dep].state == SubtaskState.COMPLETED
            ),
        )

    def _schedule(self) -> None:
        if self._canceled:
            return
        groups: dict[tuple[str, str | None], list[Item]] = defaultdict(list)
        started: list[dict[str, Any]] = []
        now = time.time()
        while self.ready and self.in_flight < self.options.max_parallel:
            sub = self.subs[self.ready.popleft()]
            agent = self.pool.choose(sub.spec, sub.tried)
            if agent is None:
                self._settle(
                    sub, SubtaskState.FAILED, error=f"no agent offers skill {sub.spec.skill!r}"
                )
                continue
            sub.state, sub.agent, sub.started_at = SubtaskState.QUEUED, agent.name, now
            sub.attempts += 1
            agent.load += 1
            self.in_flight += 1
            groups[(agent.name, sub.spec.skill)].append(
                Item(
                    sub.spec.id,
                    sub.spec.skill,
                    self._input_for(sub),
                    self.options.subtask_timeout_s,
                    sub.hold_s,
                )
            )
            started.append(self._started_data(sub))
        self.events.emit_many(self.task_id, EventKind.SUBTASK_STARTED, started)
        for (agent_name, skill), items in groups.items():
            # The endpoint sends each message to the least busy replica.
            agent = self.pool.agents[agent_name]
            parts = agent.messages_for(len(items), self.pool.cpus)
            size = -(-len(items) // parts)
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                if len(chunk) > 1 and agent.batches and agent.concurrency is None:
                    chunk += self._ahead(agent, skill, chunk)
                task = asyncio.get_running_loop().create_task(
                    self._send(agent, skill, chunk), name=f"dispatch-{self.task_id}"
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.on_change()

    def _ahead(self, agent: AgentInfo, skill: str | None, chunk: list[Item]) -> list[Item]:
        """Dependants to send with `chunk`, ahead of their inputs: pipelined dispatch.

        Each message is a full A2A lifecycle between the planner and the agent (a graph
        layer here lost 5-6 ms to it between its inputs' results and its own start), so
        a dependant whose inputs all travel in this message, or are done, goes with
        them, and the agent starts it the moment its last input finishes there. Only
        where that changes nothing else: an agent without a concurrency limit (where an
        item runs makes no difference to when), that the planner would choose for it now
        anyway, for the same skill, and dependants that would have travelled in a batch
        (a wave of two or more: a lone step keeps its own streaming message, its tokens
        live), with no optional input (whose failure lets it run without that input),
        and within the message and task limits. Their subtask-started event comes when
        their last input's result does; an input that fails there sends them back to
        waiting (`_finish_item`), as if they had never left.
        """
        members = {item.id for item in chunk}
        frontier = list(members)
        out: list[Item] = []
        while True:
            wave: dict[str, SubRun] = {}
            seen: set[str] = set()  # each dependant checked once a wave (a fan-in of 1,000)
            for member in frontier:
                for dep_id in self.subs[member].dependants:
                    if dep_id in seen:
                        continue
                    seen.add(dep_id)
                    sub = self.subs[dep_id]
                    if self._goes_ahead(sub, agent, skill, members):
                        wave[dep_id] = sub
            room = min(
                MAX_BATCH - len(chunk) - len(out), self.options.max_parallel - self.in_flight
            )
            if len(wave) < 2 or len(wave) > room:
                return out
            members.update(wave)
            for sub in sorted(wave.values(), key=lambda s: s.position):
                sub.ahead = agent
                agent.load += 1
                self.in_flight += 1
                deps = [
                    (d, None if d in members else output_text(self.subs[d].output))
                    for d in sub.spec.depends_on
                ]
                timeout = self.options.subtask_timeout_s
                out.append(Item(sub.spec.id, skill, sub.spec.input, timeout, sub.hold_s, deps))
            frontier = list(wave)

    def _goes_ahead(
        self, sub: SubRun, agent: AgentInfo, skill: str | None, members: set[str]
    ) -> bool:
        if sub.state != SubtaskState.WAITING or sub.ahead is not None or sub.spec.skill != skill:
            return False
        for d in sub.spec.depends_on:
            dep = self.subs[d]
            if dep.spec.optional or (d not in members and dep.state != SubtaskState.COMPLETED):
                return False
        return self.pool.choose(sub.spec, sub.tried) is agent

    def _started_ahead(self, sub: SubRun, at: float | None) -> None:
        """A dependant sent ahead has its inputs: the agent started it when the last came."""
        assert sub.ahead is not None
        sub.state, sub.agent = SubtaskState.RUNNING, sub.ahead.name
        sub.started_at = at if at is not None else time.time()
        sub.attempts += 1
        self._emit_started(sub)

    def _emit_started(self, sub: SubRun) -> None:
        self.events.emit(self.task_id, EventKind.SUBTASK_STARTED, self._started_data(sub))

    @staticmethod
    def _started_data(sub: SubRun) -> dict[str, Any]:
        return {
            "subtask": sub.spec.id,
            "agent": sub.agent,
            "skill": sub.spec.skill,
            "attempt": sub.attempts,
        }

    async def _send(self, agent: AgentInfo, skill: str | None, items: list[Item]) -> None:
        # The agent as chosen: a pool refresh meanwhile may drop or replace its entry.
        agent_name = agent.name
        pending = {i.id for i in items}
        a2a_ids: list[str] = []

        def started(a2a_task_id: str) -> None:
            a2a_ids.append(a2a_task_id)
            self._remote[a2a_task_id] = (agent.endpoint, pending)
            for item_id in pending:
                if self.subs[item_id].state == SubtaskState.QUEUED:
                    self.subs[item_id].state = SubtaskState.RUNNING

        def outcome(item_id: str, result: Outcome) -> None:
            if item_id in pending:
                pending.discard(item_id)
                self._finish_item(agent, item_id, result)

        try:
            if len(items) == 1:
                item = items[0]
                result = await asyncio.wait_for(
                    send_one(agent.endpoint, item, self.call, self._note, started),
                    item.timeout_s,
                )
                outcome(item.id, result)
            else:
                await send_batch(agent.endpoint, skill, items, self.call, outcome, started)
        except TimeoutError:
            for a2a_id in a2a_ids:
                await cancel_remote(agent.endpoint, a2a_id, self.call)
            error = f"timed out after {self.options.subtask_timeout_s}s on agent {agent_name!r}"
            for item_id in list(pending):
                outcome(item_id, Outcome(False, error=error))
        except ActorchestraError as e:  # agent unreachable: every unanswered item retries
            for item_id in list(pending):
                outcome(item_id, Outcome(False, error=e.message))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an A2A error from the agent: reported as the items' failure
            for item_id in list(pending):
                outcome(item_id, Outcome(False, error=f"{type(e).__name__}: {e}"))
        finally:
            for a2a_id in a2a_ids:
                self._remote.pop(a2a_id, None)
            for item_id in list(pending):  # the stream ended without their outcome
                outcome(item_id, Outcome(False, error="the agent gave no result"))

    def _note(self, item_id: str, kind: str, text: str) -> None:
        event = EventKind.TOKEN if kind == "token" else EventKind.PROGRESS
        self.events.emit(self.task_id, event, {"subtask": item_id, "text": text})

    def _finish_item(self, agent: AgentInfo, item_id: str, result: Outcome) -> None:
        agent.load -= 1
        self.in_flight -= 1
        sub = self.subs[item_id]
        if sub.ahead is not None:
            sub.ahead = None
            if sub.state != SubtaskState.RUNNING:
                # Never started: one of its inputs failed there (or the message was lost).
                # It waits again; that input's retry, or its failure, decides what follows.
                return
        if self._canceled or sub.state in (SubtaskState.CANCELED,):
            return
        if result.ok:
            sub.output, sub.usage = result.output, result.usage
            self._settle(sub, SubtaskState.COMPLETED, at=result.at)
        elif sub.attempts < self.options.max_attempts:
            sub.tried.add(agent.name)
            sub.error = result.error
            sub.state = SubtaskState.WAITING
            logger.info("subtask %s/%s failed (%s); retrying", self.task_id, item_id, result.error)
            self.ready.append(item_id)
        else:
            self._settle(sub, SubtaskState.FAILED, error=result.error, at=result.at)
        self._schedule_soon()

    def _schedule_soon(self) -> None:
        """One sweep on the next loop turn: outcomes that arrive together (a batch's
        artifact answers many items) release their dependants in the same batch."""
        if not self._sweep_pending:
            self._sweep_pending = True
            asyncio.get_running_loop().call_soon(self._sweep)

    def _sweep(self) -> None:
        self._sweep_pending = False
        self._schedule()

    def _settle(
        self, sub: SubRun, state: SubtaskState, error: str | None = None, at: float | None = None
    ) -> None:
        """`at`: when the agent says it finished (it may have held the result back); kept
        between the subtask's dispatch and now, whatever the agent's clock says."""
        now = time.time()
        finished = now if at is None else min(max(at, sub.started_at or at), now)
        sub.state, sub.finished_at = state, finished
        self.unsettled -= 1
        if state == SubtaskState.COMPLETED:
            sub.error = None
            self.events.emit(
                self.task_id,
                EventKind.SUBTASK_COMPLETED,
                {"subtask": sub.spec.id, "agent": sub.agent, "output": _preview(sub.output)},
            )
            self._release_dependants(sub)
        else:
            sub.error = error or sub.error
            self.events.emit(
                self.task_id,
                EventKind.SUBTASK_FAILED,
                {
                    "subtask": sub.spec.id,
                    "agent": sub.agent,
                    "error": sub.error,
                    "attempts": sub.attempts,
                    "optional": sub.spec.optional,
                },
            )
            if sub.spec.optional:
                # The plan allows going on without it: dependants run without its output.
                self._release_dependants(sub)
            else:
                self._skip_dependants(sub)
        if self.unsettled == 0 and not self.done.done():
            self.done.set_result(None)

    def _release_dependants(self, sub: SubRun) -> None:
        """`sub` no longer holds its dependants back: those waiting on nothing else are ready."""
        for dep_id in sub.dependants:
            dep = self.subs[dep_id]
            dep.waiting_on -= 1
            if dep.waiting_on == 0 and dep.state == SubtaskState.WAITING:
                if dep.ahead is not None:
                    self._started_ahead(dep, sub.finished_at)
                else:
                    self.ready.append(dep_id)

    def _skip_dependants(self, sub: SubRun) -> None:
        stack = list(sub.dependants)
        while stack:
            dep = self.subs[stack.pop()]
            if dep.state == SubtaskState.WAITING:
                dep.state, dep.finished_at = SubtaskState.SKIPPED, time.time()
                dep.error = f"skipped: it depends on {sub.spec.id!r}, which failed"
                self.unsettled -= 1
                stack.extend(dep.dependants)


def _preview(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _PREVIEW:
        return value[:_PREVIEW] + "..."
    return value
