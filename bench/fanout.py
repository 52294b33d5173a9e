"""Fan-out makespan and dispatch rate of the planner, beside a plain-asyncio floor.

M replicas of the `sleeper` agent (skill `sleep`: `await asyncio.sleep(L)`) serve one
task with an explicit workflow; the makespan runs from submission to the task's
`final` event, against the ideal. Workloads (issue #4 item 9):

  one-at-a-time  N parallel steps of L plus one final step depending on all of them
                 (workflow kind "graph", for that dependency); agents `concurrency: 1`;
                 ideal ceil(N/M)*L + L
  concurrent     the same with agents of unlimited concurrency; ideal 2L
  graph          4 layers x 25 nodes, each node depending on 3 random nodes of the
                 layer before (fixed seed); concurrent agents; ideal 4L
  dispatch       the fan-out with L = 0 and N = --dispatch-n; rate = N / makespan

Each runs in-process as plain asyncio too (M "agents" as semaphores, nodes awaiting
their dependencies, each taking the least-loaded agent): the floor, with
efficiency = ideal / measured for both. Tasks go through `POST /v1/tasks` and the SSE
event stream when the ingress serves the task API, else through the planner actor's
handle in the same Ray cluster; the output says which. History and events are recorded
as in every run (the planner always records them); the event count of each dispatch
task is read back from the history store after the run. One warm-up task per
deployment opens the planner's channels to every replica first. Each measured run
starts `SETTLE_S` after the previous task (or the warm-up's 50) ended, so that it does
not share the machine with their records being written; the median of `--repeat` runs
is reported (7 by default: one run's makespan here swings by 20-40%; the first
concurrent run after the warm-up, which used to start with no pause, took 1.2-1.3x
the median of the others in two series of 6 and 12 runs).

Run: .venv/bin/python bench/fanout.py [--quick] [--m 50] [--n 1000] [--l 0.05]
     [--dispatch-n 5000] [--repeat 7] [--mode throughput|standard] [--path auto|http|handle]
     [--only graph,dispatch]
     [--py-spy DIR (raw py-spy profiles of the planner and one agent, dispatch)]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from local_ray import free_port, init_local_ray, set_serve_mode
from procstat import cpu_busy, cpu_delta, cpu_snapshot

AGENT = "sleeper"
SKILL = "sleep"
APP = "fanout"
SETTLE_S = 0.5  # pause before each measured run: the previous task's records settle
LAYERS, WIDTH, FAN_IN = 4, 25, 3
REFERENCE = (
    "for reference, on this machine (issue #4): autogen-core 0.83 / 0.32 / 0.84 / 3,600/s; "
    "LangGraph 0.74 / 0.19 / 0.86 / 1,800/s"
)


# -- workloads: defined once, run by the floor and by the runtime ----------------------


@dataclass
class Workload:
    name: str
    steps: list[dict[str, Any]]
    concurrency: int | None  # per agent replica; None: unlimited
    ideal_s: float
    target: float  # efficiency; for the dispatch workload, subtasks per second
    rate_of: int = 0  # > 0: report N / makespan (the dispatch workload)


def fan_out(n: int, seconds: float) -> list[dict[str, Any]]:
    """N independent steps and one final step that depends on all of them."""
    steps = [{"id": f"p{i}", "skill": SKILL, "input": f"{seconds:g}"} for i in range(n)]
    steps.append(
        {
            "id": "final",
            "skill": SKILL,
            "input": f"{seconds:g}",
            "depends_on": [s["id"] for s in steps],
        }
    )
    return steps


def layered(seconds: float, seed: int) -> list[dict[str, Any]]:
    """LAYERS x WIDTH nodes; each depends on FAN_IN random nodes of the layer before."""
    rng = random.Random(seed)
    steps: list[dict[str, Any]] = []
    previous: list[str] = []
    for layer in range(LAYERS):
        current = [f"g{layer}_{i}" for i in range(WIDTH)]
        for node in current:
            deps = sorted(rng.sample(previous, FAN_IN)) if previous else []
            steps.append({"id": node, "skill": SKILL, "input": f"{seconds:g}", "depends_on": deps})
        previous = current
    return steps


def workloads(args: argparse.Namespace) -> list[Workload]:
    m, n, lat = args.m, args.n, args.l
    return [
        Workload("one-at-a-time", fan_out(n, lat), 1, math.ceil(n / m) * lat + lat, 0.85),
        Workload("concurrent", fan_out(n, lat), None, 2 * lat, 0.6),
        Workload(f"graph {LAYERS}x{WIDTH}", layered(lat, args.seed), None, LAYERS * lat, 0.9),
        Workload(
            f"dispatch L=0 N={args.dispatch_n}",
            fan_out(args.dispatch_n, 0.0),
            None,
            0.0,
            2000.0,
            rate_of=args.dispatch_n,
        ),
    ]


def task_body(w: Workload) -> dict[str, Any]:
    return {
        "input": f"bench {w.name}",
        "workflow": {"kind": "graph", "steps": w.steps},
        "synthesize": False,  # the synthesis LLM call is no part of these workloads
        "subtask_timeout_s": 600.0,
        "max_attempts": 1,
    }


# -- the floor: the same workloads in plain asyncio -------------------------------------


async def floor_makespan(steps: list[dict[str, Any]], m: int, concurrency: int | None) -> float:
    done = {s["id"]: asyncio.Event() for s in steps}
    load = [0] * m
    slots = [asyncio.Semaphore(concurrency) if concurrency else None for _ in range(m)]

    async def node(step: dict[str, Any]) -> None:
        for dep in step.get("depends_on", ()):
            await done[dep].wait()
        agent = min(range(m), key=load.__getitem__)
        load[agent] += 1
        try:
            seconds = float(step["input"].split()[0])
            slot = slots[agent]
            if slot is not None:
                async with slot:
                    if seconds > 0:
                        await asyncio.sleep(seconds)
            elif seconds > 0:
                await asyncio.sleep(seconds)
        finally:
            load[agent] -= 1
        done[step["id"]].set()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for step in steps:
            group.create_task(node(step))
    return time.perf_counter() - start


# -- the runtime ------------------------------------------------------------------------


@dataclass
class Measured:
    makespan_s: float  # submission to the final event, as the client received it
    planner_s: float  # submission to the final event's own timestamp (planner clock)
    events: int  # events the client received
    state: str
    error: str | None = None


@dataclass
class Result:
    workload: Workload
    floor_s: list[float] = field(default_factory=list)
    runs: list[Measured] = field(default_factory=list)
    recorded_events: int | None = None
    cpu_s: Counter[str] = field(default_factory=Counter)  # per process group, all runs
    wall_s: float = 0.0  # of all runs


class Client:
    """Submit a task and follow its events to the final one: over HTTP or the handle."""

    path = ""
    last_task_id = ""

    async def run(self, body: dict[str, Any]) -> Measured:
        raise NotImplementedError

    async def recorded_events(self, task_id: str) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        return None


async def follow(
    submit: Callable[[], Awaitable[str]],
    events: Callable[[str], AsyncIterator[dict[str, Any]]],
) -> tuple[Measured, str]:
    start = time.time()
    task_id = await submit()
    count, final = 0, None
    async for event in events(task_id):
        count += 1
        if event["kind"] == "final":
            final = event
            break
    received = time.time()
    if final is None:
        raise RuntimeError(f"task {task_id}: the event stream ended without a final event")
    data = final["data"]
    measured = Measured(
        received - start,
        float(final["ts"]) - start,
        count,
        str(data.get("state")),
        data.get("error"),
    )
    return measured, task_id


class HandleClient(Client):
    path = "planner actor handle (PlannerHandle.submit + PlannerHandle.events, same Ray cluster)"

    def __init__(self, planner: Any) -> None:
        self.planner = planner

    async def run(self, body: dict[str, Any]) -> Measured:
        measured, self.last_task_id = await follow(
            lambda: self.planner.submit(body), self.planner.events
        )
        return measured

    async def recorded_events(self, task_id: str) -> int:
        return sum([1 async for _ in self.planner.events(task_id, 0)])


class HttpClient(Client):
    path = (
        "HTTP with the Python client (actorchestra.Client): POST /v1/tasks, then "
        "GET /v1/tasks/{id}/events (SSE) to the final event"
    )

    def __init__(self, base: str) -> None:
        from actorchestra.client import Client as TaskClient

        self.tasks = TaskClient(base, token="")

    async def _submit(self, body: dict[str, Any]) -> str:
        fields = {k: v for k, v in body.items() if k != "input"}
        return await self.tasks.submit(body["input"], **fields)

    def _events(self, task_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        return self.tasks.events(task_id, after)

    async def run(self, body: dict[str, Any]) -> Measured:
        measured, self.last_task_id = await follow(lambda: self._submit(body), self._events)
        return measured

    async def recorded_events(self, task_id: str) -> int:
        return sum([1 async for _ in self._events(task_id, 0)])

    async def close(self) -> None:
        await self.tasks.aclose()


def serves_task_api(base: str) -> bool:
    try:
        spec = httpx.get(f"{base}/openapi.json", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return False
    return "/v1/tasks" in spec.get("paths", {})


def wait_healthy(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"{base}/health", timeout=5).json()
            if body.get("status") == "healthy" and body.get("agents", {}).get(AGENT) == "healthy":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"{base}: the runtime was not healthy within {timeout:.0f}s")


def actor_pid(title_prefix: bytes = b"ray::RayPlanner") -> int | None:
    """An actor's process: Ray titles actor processes `ray::<Class>...` (the first found)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(title_prefix):
            return int(proc.name)
    return None


class Deployment:
    """The Serve app with M sleeper replicas of one concurrency, its planner, a client."""

    def __init__(self, args: argparse.Namespace, concurrency: int | None, data_dir: str) -> None:
        self.args, self.concurrency = args, concurrency
        label = "one" if concurrency == 1 else "conc"
        self.namespace = f"actorchestra-bench-fanout-{label}"
        self.data_dir = str(Path(data_dir) / label)
        self.client: Client | None = None
        self.startup_s = 0.0

    async def __aenter__(self) -> Deployment:
        from ray import serve

        from actorchestra.actors.planner.actor import ensure_planner
        from actorchestra.actors.planner.service import PlannerOptions
        from actorchestra.serve_apps.builder import build_app

        started = time.perf_counter()
        agent: dict[str, Any] = {
            "name": AGENT,
            "cls": "actorchestra.actors.examples:SleepAgent",
            "replicas": self.args.m,
        }
        if self.concurrency is not None:
            agent["concurrency"] = self.concurrency
        base = self.args.base
        await asyncio.to_thread(
            serve.run,
            build_app(
                {
                    "agents": [agent],
                    "runtime": {
                        "namespace": self.namespace,
                        "public_url": base,
                        "data_dir": self.data_dir,
                    },
                }
            ),
            name=APP,
            route_prefix="/",
        )
        await asyncio.to_thread(wait_healthy, base, 900)
        # The ingress's planner (get_if_exists); made here if this ingress makes none.
        planner = ensure_planner(self.namespace, PlannerOptions(data_dir=self.data_dir))
        self.startup_s = time.perf_counter() - started
        http = await asyncio.to_thread(serves_task_api, base)
        if self.args.path == "http" and not http:
            raise SystemExit("--path http: the ingress does not serve /v1/tasks (yet)")
        if http and self.args.path != "handle":
            self.client = HttpClient(base)
        else:
            self.client = HandleClient(planner)
        # Warm-up: at least one message to every replica, so that no measured run pays
        # a replica's first message. One single-step task per replica, all at once: each
        # message goes to the least busy replica, and every one is busy for a moment.
        warm_body = task_body(Workload("warm-up", fan_out(1, 0.2), None, 0, 0))
        warms = await asyncio.gather(*(self.client.run(warm_body) for _ in range(self.args.m)))
        warm = next((w for w in warms if w.state != "completed"), warms[0])
        if warm.state != "completed":
            raise SystemExit(f"warm-up task ended {warm.state}: {warm.error}")
        await asyncio.sleep(SETTLE_S)  # the warm-up's records, as between measured runs
        return self

    async def __aexit__(self, *exc: object) -> None:
        from ray import serve

        from actorchestra.actors.runtime import kill_namespace

        if self.client is not None:
            await self.client.close()
        await asyncio.to_thread(serve.delete, APP)
        await asyncio.to_thread(kill_namespace, self.namespace)


async def run_workload(dep: Deployment, result: Result, args: argparse.Namespace) -> None:
    assert dep.client is not None
    w = result.workload
    profile = bool(args.py_spy and w.rate_of)
    # A profiled run, when asked for, comes after the measured ones and is not counted.
    for attempt in range(args.repeat + profile):
        spies = []
        if attempt == args.repeat:
            for role, prefix in (("planner", b"ray::RayPlanner"), ("agent", b"ray::RayAgentActor")):
                pid = actor_pid(prefix)
                if pid is None:
                    continue
                out = Path(args.py_spy) / f"{role}-dispatch-{os.getpid()}.txt"
                spies.append(await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "py-spy"), "record", "-f", "raw",
                    "-r", "200", "-p", str(pid), "-o", str(out), "--nonblocking",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                ))  # fmt: skip
            await asyncio.sleep(1.0)  # py-spy attaches
        before, started = cpu_snapshot(), time.perf_counter()
        measured = await dep.client.run(task_body(w))
        wall, after = time.perf_counter() - started, cpu_snapshot()
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile and exits
            await asyncio.wait_for(spy.wait(), 60)
        if measured.state != "completed":
            raise SystemExit(
                f"{w.name}: task {dep.client.last_task_id} ended {measured.state}: "
                f"{(measured.error or '')[:2000]}"
            )
        if attempt < args.repeat:
            result.runs.append(measured)
            result.cpu_s.update(cpu_delta(before, after))
            result.wall_s += wall
        await asyncio.sleep(SETTLE_S)  # let the previous task's write-behind settle
    if w.rate_of:
        result.recorded_events = await dep.client.recorded_events(dep.client.last_task_id)


# -- the report -------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(
    results: list[Result], args: argparse.Namespace, path: str, startups: list[str], load: float
) -> None:
    print(
        f"\nfan-out bench: M={args.m} agent replicas, N={args.n}, L={args.l * 1000:g} ms, "
        f"graph {LAYERS}x{WIDTH} (fan-in {FAN_IN}, seed {args.seed}), dispatch N="
        f"{args.dispatch_n}; median of {args.repeat} runs, Serve mode {args.mode}"
    )
    print(f"measured through: {path}")
    print("makespan: from submission to the task's final event as the client received it")
    print("          (in brackets: to the final event's own timestamp in the planner)")
    print("startup: " + "; ".join(startups))
    print(f"machine: {os.cpu_count()} cores, {load:.0%} busy in the second before Ray started")
    header = (
        f"{'workload':<16} {'ideal ms':>8} | {'floor ms':>8} {'eff':>5} | "
        f"{'runtime ms':>10} {'(planner)':>10} {'eff':>5} | {'target':>6} {'met':>4}"
    )
    print("\n" + header)
    print("-" * len(header))
    for r in results:
        w = r.workload
        if w.rate_of:
            continue
        floor = med(r.floor_s)
        rt = med([m.makespan_s for m in r.runs])
        planner = med([m.planner_s for m in r.runs])
        eff = w.ideal_s / rt
        print(
            f"{w.name:<16} {w.ideal_s * 1000:>8.0f} | {floor * 1000:>8.0f} "
            f"{w.ideal_s / floor:>5.2f} | {rt * 1000:>10.0f} {f'({planner * 1000:.0f})':>10} "
            f"{eff:>5.2f} | {w.target:>6.2f} {'yes' if eff >= w.target else 'NO':>4}"
        )
    for r in results:
        w = r.workload
        if not w.rate_of:
            continue
        floor_rate = w.rate_of / med(r.floor_s)
        rate = w.rate_of / med([m.makespan_s for m in r.runs])
        planner_rate = w.rate_of / med([m.planner_s for m in r.runs])
        print(
            f"\n{w.name}: floor {floor_rate:,.0f} subtasks/s | runtime {rate:,.0f} subtasks/s "
            f"({planner_rate:,.0f}/s to the planner's final event) | ratio to floor "
            f"{rate / floor_rate:.3f} | target {w.target:,.0f}/s "
            f"{'met' if rate >= w.target else 'NOT met'}"
        )
        print(
            f"  events streamed to the client per run: {r.runs[0].events:,}; recorded in the "
            f"history store (read back after the run): {r.recorded_events:,}"
        )
    print("\nruns (runtime makespan ms, each):")
    for r in results:
        runs = ", ".join(f"{m.makespan_s * 1000:.0f}" for m in r.runs)
        floors = ", ".join(f"{f * 1000:.0f}" for f in r.floor_s)
        print(f"  {r.workload.name:<22} runtime {runs}   floor {floors}")
    print("\nCPU during the runtime runs, in cores (CPU seconds / wall seconds), by process:")
    groups = sorted({g for r in results for g in r.cpu_s}, key=lambda g: -results[-1].cpu_s[g])
    print(f"  {'':<22}" + "".join(f"{g[:14]:>15}" for g in groups))
    for r in results:
        cores = [r.cpu_s[g] / r.wall_s for g in groups]
        print(f"  {r.workload.name:<22}" + "".join(f"{c:>15.2f}" for c in cores))
    print("\n" + REFERENCE)


# -- main -------------------------------------------------------------------------------


async def run_floor(results: list[Result], args: argparse.Namespace) -> None:
    for r in results:
        for _ in range(args.repeat):
            r.floor_s.append(await floor_makespan(r.workload.steps, args.m, r.workload.concurrency))


async def run_runtime(results: list[Result], args: argparse.Namespace) -> tuple[str, list[str]]:
    path, startups = "", []
    with tempfile.TemporaryDirectory(prefix="fanout-bench-") as data_dir:
        for concurrency in (1, None):
            if not any(r.workload.concurrency == concurrency for r in results):
                continue
            async with Deployment(args, concurrency, data_dir) as dep:
                assert dep.client is not None
                path = dep.client.path
                label = "concurrency 1" if concurrency == 1 else "unlimited concurrency"
                startups.append(f"{args.m} replicas, {label}: {dep.startup_s:.0f} s")
                print(f"[{label}] up in {dep.startup_s:.1f} s via {path}", flush=True)
                for r in results:
                    if r.workload.concurrency == concurrency:
                        await run_workload(dep, r, args)
                        print(f"[{label}] {r.workload.name} done", flush=True)
    return path, startups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=50, help="agent replicas (<= 64)")
    parser.add_argument("--n", type=int, default=1000, help="parallel subtasks")
    parser.add_argument("--l", type=float, default=0.05, help="seconds each subtask sleeps")
    parser.add_argument("--dispatch-n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7, help="runs per workload (median)")
    parser.add_argument("--seed", type=int, default=7, help="of the layered graph")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: M=8, N=100, 500")
    parser.add_argument("--mode", choices=["throughput", "standard"], default="throughput")
    parser.add_argument("--path", choices=["auto", "http", "handle"], default="auto")
    parser.add_argument(
        "--py-spy", metavar="DIR", help="record the planner and one agent replica during dispatch"
    )
    parser.add_argument(
        "--only",
        type=lambda v: v.split(","),
        default=[],
        help="comma-separated: one-at-a-time, concurrent, graph, dispatch (default: all)",
    )
    args = parser.parse_args()
    if args.quick:
        args.m, args.n, args.dispatch_n, args.repeat = 8, 100, 500, 2

    chosen = [w for w in workloads(args) if not args.only or w.name.split()[0] in args.only]
    results = [Result(w) for w in chosen]
    asyncio.run(run_floor(results, args))

    set_serve_mode(args.mode)
    import ray
    from ray import serve

    port = free_port()
    args.base = f"http://127.0.0.1:{port}"
    load = cpu_busy()
    init_local_ray("actorchestra-bench")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        path, startups = asyncio.run(run_runtime(results, args))
    finally:
        serve.shutdown()
        ray.shutdown()
    report(results, args, path, startups, load)


if __name__ == "__main__":
    main()
