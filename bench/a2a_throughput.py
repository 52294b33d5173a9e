"""SendMessage throughput and latency: the actorchestra ingress vs a2a-sdk served directly.

Both serve the same echo executor. The direct server is a2a-sdk's own routes in one
uvicorn process; the ingress is Ray Serve (throughput-optimized mode with HAProxy)
forwarding to the echo agent's Ray actor. The load generator runs in its own process.

Targets (issue #2): ingress throughput >= 1.0x direct at concurrency 64; ingress p50
within 2 ms of direct at concurrency 1; one idle agent actor <= 80 MB resident.

Run: .venv/bin/python bench/a2a_throughput.py [--duration 8] [--concurrency 1,16,64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from local_ray import free_port, init_local_ray, set_serve_mode

HERE = Path(__file__).resolve().parent
PY = sys.executable


def load(url: str, concurrency: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [PY, str(HERE / "loadgen.py"), url, str(concurrency), str(duration)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def run_direct(levels: list[int], duration: float) -> dict[int, dict[str, float]]:
    port = free_port()
    proc = subprocess.Popen([PY, str(HERE / "direct_server.py"), str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/.well-known/agent-card.json")
        return {c: load(f"http://127.0.0.1:{port}/", c, duration) for c in levels}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def memory_of(pid: int) -> dict[str, float]:
    """Resident (RSS), unique (USS: private pages) and proportional (PSS) memory, in MB."""
    rss = uss = pss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            uss += int(line.split()[1]) / 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return {"rss_mb": rss, "uss_mb": uss, "pss_mb": pss}


def bare_actor_memory() -> dict[str, dict[str, float]]:
    """An idle Ray actor with no code of ours, in this Ray session: the floor an agent
    actor stands on. Measured plain and with the setup hook agent actors run."""
    import ray

    from actorchestra.actors.spec import AGENT_SETUP_HOOK, RAY_SETUP_HOOK_ENV

    @ray.remote(num_cpus=0)
    class Idle:
        def pid(self) -> int:
            return os.getpid()

    hooked = {"env_vars": {RAY_SETUP_HOOK_ENV: AGENT_SETUP_HOOK}}
    actors = {"plain": Idle.remote(), "hooked": Idle.options(runtime_env=hooked).remote()}
    pids = {name: ray.get(actor.pid.remote()) for name, actor in actors.items()}
    time.sleep(3)
    memory = {name: memory_of(pid) for name, pid in pids.items()}
    for actor in actors.values():
        ray.kill(actor)
    return memory


def run_ingress(levels: list[int], duration: float, mode: str) -> tuple[dict, dict]:
    set_serve_mode(mode)
    import ray
    from ray import serve

    from actorchestra.serve_apps.builder import build_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    init_local_ray("actorchestra-bench")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(
            build_app(
                {
                    "agents": [{"name": "echo", "cls": "actorchestra.actors.examples:EchoAgent"}],
                    "runtime": {"namespace": "actorchestra-bench", "public_url": base},
                }
            ),
            name="bench",
            route_prefix="/",
        )
        wait_http(f"{base}/a2a/echo/.well-known/agent-card.json")
        time.sleep(3)  # let the health loop settle; the actor is idle
        pid = httpx.get(f"{base}/v1/agents/echo").json()["replicas"][0]["pid"]
        idle: dict[str, Any] = {**memory_of(pid), "bare": bare_actor_memory()}
        results = {c: load(f"{base}/a2a/echo", c, duration) for c in levels}
        return results, idle
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--mode", choices=["throughput", "standard"], default="throughput")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    direct = run_direct(levels, args.duration)
    ingress, idle = run_ingress(levels, args.duration, args.mode)

    print(f"\nSendMessage to an echo agent, {args.duration:g} s per level, Serve mode {args.mode}")
    print(
        f"{'conc':>5} | {'direct rps':>10} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'ingress rps':>11} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>5} {'dp50 ms':>8} | errors"
    )
    for c in levels:
        d, i = direct[c], ingress[c]
        print(
            f"{c:>5} | {d['rps']:>10.0f} {d['p50_ms']:>7.2f} {d['p99_ms']:>7.2f} | "
            f"{i['rps']:>11.0f} {i['p50_ms']:>7.2f} {i['p99_ms']:>7.2f} | "
            f"{i['rps'] / d['rps']:>5.2f} {i['p50_ms'] - d['p50_ms']:>+8.2f} | "
            f"{d['errors']}/{i['errors']}"
        )
    hi, lo = max(levels), min(levels)
    print(
        f"\ntarget: ingress/direct throughput at c={hi} >= 1.0  -> "
        f"{ingress[hi]['rps'] / direct[hi]['rps']:.2f}"
    )
    print(
        f"target: ingress p50 - direct p50 at c={lo} <= 2 ms -> "
        f"{ingress[lo]['p50_ms'] - direct[lo]['p50_ms']:+.2f} ms"
    )
    bare, hooked = idle["bare"]["plain"], idle["bare"]["hooked"]
    print(
        f"target: idle agent actor <= 80 MB resident -> RSS {idle['rss_mb']:.0f} MB "
        f"(unique {idle['uss_mb']:.0f} MB, proportional {idle['pss_mb']:.0f} MB)"
    )
    print(
        f"  beside it, an idle Ray actor with no code of ours: RSS {bare['rss_mb']:.0f} MB "
        f"(unique {bare['uss_mb']:.0f}); with the agents' setup hook (no pyarrow): RSS "
        f"{hooked['rss_mb']:.0f} MB (unique {hooked['uss_mb']:.0f}); "
        f"agent / bare RSS {idle['rss_mb'] / bare['rss_mb']:.2f}"
    )
    print(f"load generator CPU per request: {ingress[hi]['client_cpu_ms_per_req']:.3f} ms")
    for name, res in (("direct", direct), ("ingress", ingress)):
        for c, r in res.items():
            if r["errors"]:
                print(f"{name} c={c}: {r['errors']} errors, first: {r['first_error']}")


if __name__ == "__main__":
    main()
