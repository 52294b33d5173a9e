"""Token streaming through an LLM agent over A2A, beside the same reply read from the model.

One run of each, alternating, several times: a 2,000-token reply

- direct: streamed from the offline model server (`POST /v1/chat/completions`,
  `stream: true`), one SSE event per token;
- via A2A: the same model server behind the `writer` LLM agent, read from the ingress
  with JSON-RPC `SendStreamingMessage` (SSE); the agent coalesces tokens into artifact
  updates.

The model server generates at a fixed pace (`--token-ms` per token, its per-token latency
knob), so both sides wait on the same generation and the difference is what the runtime
adds. Both are read by the same lean reader (a bare asyncio connection, HTTP/1.1 parsed
by hand, one `json.loads` per event; `--reader httpx` uses httpx's streaming API
instead) in a process of its own, away from the Ray driver; its CPU time per run is
printed, to show it is not the bottleneck. The model server is the
`model-server` actor `actorchestra up` starts.

TTFT: request sent -> first text byte. Tokens/s: completion tokens / (request sent ->
last text byte).

Targets (issue #3): A2A TTFT within 10 ms of direct at p50; A2A tokens/s >= 0.8x direct.

Run: .venv/bin/python bench/streaming.py [--tokens 2000] [--token-ms 3] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from local_ray import free_port, init_local_ray, set_serve_mode

NAMESPACE = "actorchestra-bench-stream"


@dataclass
class Run:
    ttft_s: float
    total_s: float  # request -> last text
    tokens: int
    events: int  # SSE events that carried text
    all_events: int
    client_cpu_s: float
    text: str = field(repr=False, default="")
    agent_first_token_s: float = 0.0  # A2A: the agent's own wait for the model's first token

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s


def _events(buffer: bytearray) -> list[bytes]:
    """Take the complete events' `data:` payloads out of `buffer` (CRLF or LF lines)."""
    out = []
    while True:
        cut = buffer.find(b"\n\n")
        if cut < 0:
            return out
        raw = bytes(buffer[:cut])
        del buffer[: cut + 2]
        for line in raw.split(b"\n"):
            if line.startswith(b"data:"):
                out.append(line[5:].strip())


async def raw_sse(url: str, body: dict[str, Any], headers: dict[str, str]) -> AsyncIterator[Any]:
    """POST and read SSE over a bare asyncio connection: HTTP/1.1, chunked or not.

    The leanest reader Python offers: no HTTP library between the socket and the event
    parser, so the per-event cost is the parse, not a client's machinery.
    """
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        response_head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        if not response_head.startswith("http/1.1 200"):
            raise RuntimeError(f"{url} answered {response_head.splitlines()[0]}")
        chunked = "transfer-encoding: chunked" in response_head
        buffer = bytearray()
        while True:
            if chunked:
                size = int((await reader.readline()).strip().split(b";")[0], 16)
                if size == 0:
                    return
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    return
            buffer += data.replace(b"\r\n", b"\n")  # sse-starlette ends lines with CRLF
            for item in _events(buffer):
                if item == b"[DONE]":
                    return
                yield json.loads(item)
    finally:
        writer.close()


async def httpx_sse(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> AsyncIterator[Any]:
    """The same, read with httpx's streaming API (for comparison: `--reader httpx`)."""
    async with http.stream("POST", url, json=body, headers=headers) as r:
        r.raise_for_status()
        buffer = bytearray()
        async for data in r.aiter_bytes():
            buffer += data.replace(b"\r\n", b"\n")
            for item in _events(buffer):
                if item == b"[DONE]":
                    return
                yield json.loads(item)


Reader = Callable[[str, dict[str, Any], dict[str, str]], AsyncIterator[Any]]


async def direct_run(read: Reader, base_url: str, prompt: str) -> Run:
    body = {
        "model": "actorchestra-offline",
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    cpu0, t0 = time.thread_time(), time.perf_counter()
    first = last = 0.0
    pieces: list[str] = []
    events = all_events = tokens = 0
    async for data in read(f"{base_url}/chat/completions", body, {}):
        all_events += 1
        if data.get("usage"):
            tokens = data["usage"]["completion_tokens"]
        for choice in data.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                last = time.perf_counter()
                first = first or last
                pieces.append(text)
                events += 1
    cpu = time.thread_time() - cpu0
    return Run(first - t0, last - t0, tokens, events, all_events, cpu, "".join(pieces))


async def a2a_run(read: Reader, agent_url: str, prompt: str) -> Run:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendStreamingMessage",
        "params": {
            "message": {
                "messageId": uuid.uuid4().hex,
                "contextId": f"bench-{uuid.uuid4().hex}",
                "role": "ROLE_USER",
                "parts": [{"text": prompt}],
            }
        },
    }
    cpu0, t0 = time.thread_time(), time.perf_counter()
    first = last = 0.0
    pieces: list[str] = []
    events = all_events = tokens = 0
    state = ""
    agent_first = 0.0
    async for data in read(agent_url, body, {"A2A-Version": "1.0"}):
        all_events += 1
        if "error" in data:
            raise RuntimeError(f"A2A error: {data['error']}")
        result = data["result"]
        if "artifactUpdate" in result:
            text = "".join(p.get("text", "") for p in result["artifactUpdate"]["artifact"]["parts"])
            if text:
                last = time.perf_counter()
                first = first or last
                pieces.append(text)
                events += 1
        elif "statusUpdate" in result:
            update = result["statusUpdate"]
            state = update["status"]["state"]
            llm = (update.get("metadata") or {}).get("llm")
            if llm:
                tokens = int(llm["completion_tokens"])
                agent_first = float(llm.get("first_token_s") or 0.0)
    if state != "TASK_STATE_COMPLETED":
        raise RuntimeError(f"the A2A task ended {state or 'without a final status'}")
    cpu = time.thread_time() - cpu0
    text = "".join(pieces)
    return Run(first - t0, last - t0, tokens, events, all_events, cpu, text, agent_first)


async def measure(
    model_url: str, agent_url: str, tokens: int, runs: int, reader: str
) -> tuple[list[Run], list[Run]]:
    prompt = f"Write {tokens} tokens about actors, mailboxes and message passing."
    direct: list[Run] = []
    a2a: list[Run] = []
    async with httpx.AsyncClient(timeout=120) as http:
        read: Reader = raw_sse if reader == "raw" else functools.partial(httpx_sse, http)
        # warm-up: the agent's model client, code paths, caches
        await direct_run(read, model_url, "Write 50 tokens about warming up.")
        await a2a_run(read, agent_url, "Write 50 tokens about warming up.")
        for i in range(runs):
            pair = [("direct", model_url), ("a2a", agent_url)]
            if i % 2:
                pair.reverse()  # alternate who goes first
            for side, url in pair:
                if side == "direct":
                    direct.append(await direct_run(read, url, prompt))
                else:
                    a2a.append(await a2a_run(read, url, prompt))
    return direct, a2a


def deploy(mode: str, token_ms: float) -> tuple[Any, str]:
    """Ray, the `model-server` actor (paced), and the runtime with a `writer` LLM agent."""
    set_serve_mode(mode)
    from ray import serve

    from actorchestra.serve_apps.builder import build_app
    from actorchestra.serve_apps.model_server import ModelServerConfig
    from actorchestra.serve_apps.model_server.actor import ensure_offline_model_server

    init_local_ray(NAMESPACE)
    model = ensure_offline_model_server(
        NAMESPACE, 0, ModelServerConfig(token_latency_s=token_ms / 1000)
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(
        build_app(
            {
                "agents": [
                    {
                        "name": "writer",
                        "cls": "actorchestra.actors.llm_agent:LLMAgent",
                        "options": {"role": "writer", "memory": False},
                    }
                ],
                "runtime": {
                    "namespace": NAMESPACE,
                    "public_url": base,
                    "llm_offline": True,
                    "agent": {"llm": {"base_url": model.base_url}},
                },
            }
        ),
        name="bench-stream",
        route_prefix="/",
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=5).json().get("status") == "healthy":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        raise SystemExit("the runtime did not become healthy")
    return model, base


def p50(values: list[float]) -> float:
    return statistics.median(values)


def report(direct: list[Run], a2a: list[Run], args: argparse.Namespace) -> None:
    print(
        f"\n{args.tokens}-token reply, model paced at {args.token_ms:g} ms/token, "
        f"{args.runs} runs each, Serve mode {args.mode}, {args.reader} SSE reader"
    )
    print(
        f"{'run':>4} | {'direct TTFT ms':>14} {'tok/s':>7} {'events':>6} {'cpu ms':>6} | "
        f"{'A2A TTFT ms':>11} {'tok/s':>7} {'events':>6} {'cpu ms':>6} {'agent 1st ms':>12}"
    )
    for i, (d, a) in enumerate(zip(direct, a2a, strict=True)):
        print(
            f"{i + 1:>4} | {d.ttft_s * 1e3:>14.2f} {d.tokens_per_s:>7.1f} {d.events:>6} "
            f"{d.client_cpu_s * 1e3:>6.0f} | {a.ttft_s * 1e3:>11.2f} {a.tokens_per_s:>7.1f} "
            f"{a.events:>6} {a.client_cpu_s * 1e3:>6.0f} {a.agent_first_token_s * 1e3:>12.2f}"
        )
    d_ttft, a_ttft = p50([r.ttft_s for r in direct]) * 1e3, p50([r.ttft_s for r in a2a]) * 1e3
    d_tps, a_tps = p50([r.tokens_per_s for r in direct]), p50([r.tokens_per_s for r in a2a])
    print(f"\np50 TTFT      direct {d_ttft:8.2f} ms   A2A {a_ttft:8.2f} ms")
    print(f"p50 tokens/s  direct {d_tps:8.1f}      A2A {a_tps:8.1f}")
    paired = p50([(a.ttft_s - d.ttft_s) * 1e3 for d, a in zip(direct, a2a, strict=True)])
    agent_first = p50([r.agent_first_token_s for r in a2a]) * 1e3
    print(
        f"              (median of the per-run A2A - direct TTFT differences: {paired:+.2f} ms; "
        f"inside the agent, the model's first token came {agent_first:.2f} ms after the "
        "skill started)"
    )
    print(f"\ntarget: A2A TTFT - direct TTFT at p50 <= 10 ms -> {a_ttft - d_ttft:+.2f} ms")
    print(f"target: A2A tokens/s / direct tokens/s >= 0.8 -> {a_tps / d_tps:.3f}x")
    tokens = {r.tokens for r in direct + a2a}
    events = sorted({r.events for r in a2a})
    totals = sorted({r.all_events for r in a2a})
    print(
        f"\nA2A events that carried the {args.tokens} tokens: {events} artifact updates "
        f"({totals} SSE events in all, statuses included); direct: "
        f"{sorted({r.events for r in direct})} token events"
    )
    print(f"completion tokens per run (both sides): {sorted(tokens)}")
    same = all(d.text == direct[0].text for d in direct) and all(a.text for a in a2a)
    print(f"every run returned its full text: {same}")


def read_in_child(
    model_url: str, agent_url: str, tokens: int, runs: int, reader: str
) -> tuple[list[Run], list[Run]]:
    """Run the readers in a process of their own, away from this Ray driver's threads."""
    out = subprocess.run(
        [sys.executable, __file__, "--read", model_url, agent_url, str(tokens), str(runs), reader],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"the reader process failed:\n{out.stderr}")
    raw = json.loads(out.stdout)
    return [Run(**r) for r in raw["direct"]], [Run(**r) for r in raw["a2a"]]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--read":  # the reader process
        model_url, agent_url, tokens, runs, reader = sys.argv[2:7]
        direct, a2a = asyncio.run(measure(model_url, agent_url, int(tokens), int(runs), reader))
        print(json.dumps({"direct": [asdict(r) for r in direct], "a2a": [asdict(r) for r in a2a]}))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--token-ms", type=float, default=3.0, help="model pace per token")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--mode", choices=["throughput", "standard"], default="throughput")
    parser.add_argument(
        "--reader", choices=["raw", "httpx"], default="raw", help="how the SSE is read"
    )
    args = parser.parse_args()

    import ray
    from ray import serve

    model, base = deploy(args.mode, args.token_ms)
    try:
        direct, a2a = read_in_child(
            model.base_url, f"{base}/a2a/writer", args.tokens, args.runs, args.reader
        )
    finally:
        serve.shutdown()
        model.stop()
        ray.shutdown()
    report(direct, a2a, args)


if __name__ == "__main__":
    main()
