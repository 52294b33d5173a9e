"""`http_get`: public pages yes; private, loopback and link-local addresses no.

A tiny HTTP server on 127.0.0.1 (asyncio, in this process) stands in for the web;
127.0.0.1 is allowed only in the tests that mean to reach it. Name resolution that
tests need to control (rebinding, public names) goes through an injected resolver,
and pinning is observed with `httpx.MockTransport`: no external network anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from actorchestra.actors.tools import HttpGet, ToolError, ToolRegistry, ToolsConfig, http_get_tool
from tests.unit.raw_http import RawHttpServer, Reply, RequestHead, raw_http_server

TEXT = {"Content-Type": "text/plain; charset=utf-8"}
PAGES = {
    "/hello": Reply("200 OK", TEXT, "héllo wörld".encode()),
    "/big": Reply("200 OK", TEXT, b"a" * 200_000),
    "/missing": Reply("404 Not Found", TEXT, b"no such page"),
    "/png": Reply("200 OK", {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n"),
    "/to-hello": Reply("302 Found", {"Location": "/hello"}),
    "/to-metadata": Reply("302 Found", {"Location": "http://169.254.169.254/latest/meta-data/"}),
    "/to-ten": Reply("302 Found", {"Location": "http://10.255.255.1/"}),
    "/to-port-1": Reply("302 Found", {"Location": "http://127.0.0.1:1/"}),
    "/loop": Reply("302 Found", {"Location": "/loop"}),
}


@pytest.fixture
async def server() -> AsyncIterator[RawHttpServer]:
    """`PAGES` on 127.0.0.1 only; `/slow` answers once the test is over."""
    release = asyncio.Event()

    def route(request: RequestHead) -> Reply:
        before = release.wait if request.path == "/slow" else None
        page = PAGES.get(request.path, Reply("200 OK", TEXT, b"slow"))
        return Reply(page.status, page.headers, page.body, before)

    async with raw_http_server(route, "127.0.0.1") as srv:
        try:
            yield srv
        finally:
            release.set()


def _getter(*, allowed: list[str] | None = None, **limits: object) -> HttpGet:
    return HttpGet(ToolsConfig(allowed_hosts=allowed or [], **limits))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.1:8080/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("http://[::ffff:10.0.0.1]/", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 written as one decimal number
        ("http://100.64.0.1/", "non-public"),
        ("http://[64:ff9b::a00:1]/", "private (IPv4 10.0.0.1 inside IPv6)"),  # NAT64
        ("http://[2002:7f00:1::1]/", "loopback (IPv4 127.0.0.1 inside IPv6)"),  # 6to4
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00::1]/", "private"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
async def test_refuses_local_and_private_addresses(url: str, reason: str) -> None:
    with pytest.raises(ToolError) as info:
        await _getter().fetch(url)
    assert f"a {reason} address" in info.value.message
    assert "ACTORCHESTRA_ALLOWED_HOSTS" in info.value.message


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "not a url"])
async def test_refuses_other_schemes(url: str) -> None:
    with pytest.raises(ToolError, match=r"only http and https|not a valid URL|has no host"):
        await _getter().fetch(url)


async def test_fetches_from_an_allowed_local_server(server: RawHttpServer) -> None:
    result = await _getter(allowed=["127.0.0.1"]).fetch(f"{server.base}/hello")
    assert (result.status, result.text, result.truncated) == (200, "héllo wörld", False)
    assert result.content_type.startswith("text/plain")
    missing = await _getter(allowed=["127.0.0.1"]).fetch(f"{server.base}/missing")
    assert (missing.status, missing.text) == (404, "no such page")
    png = await _getter(allowed=["127.0.0.1"]).fetch(f"{server.base}/png")
    assert png.text is None and png.bytes_read == 8


async def test_allowed_hosts_accepts_host_port_and_cidr(server: RawHttpServer) -> None:
    for entry in (f"127.0.0.1:{server.port}", "127.0.0.0/8"):
        result = await _getter(allowed=[entry]).fetch(f"{server.base}/hello")
        assert result.status == 200
    with pytest.raises(ToolError, match="loopback"):
        await _getter(allowed=["127.0.0.1:1", "10.0.0.0/8"]).fetch(f"{server.base}/hello")
    with pytest.raises(ToolError, match="loopback"):
        await _getter(allowed=["localhost"]).fetch(f"{server.base}/hello")


async def test_without_allowance_the_local_server_is_never_contacted(server: RawHttpServer) -> None:
    with pytest.raises(ToolError, match="loopback"):
        await _getter().fetch(f"{server.base}/hello")
    assert server.paths == []


async def test_body_is_cut_at_the_size_limit(server: RawHttpServer) -> None:
    result = await _getter(allowed=["127.0.0.1"], http_max_bytes=1000).fetch(f"{server.base}/big")
    assert result.truncated and result.bytes_read == 1000 and result.text == "a" * 1000


async def test_redirects_are_followed_and_each_target_checked(server: RawHttpServer) -> None:
    getter = _getter(allowed=["127.0.0.1"])
    result = await getter.fetch(f"{server.base}/to-hello")
    assert result.url.endswith("/hello") and result.text == "héllo wörld"
    with pytest.raises(ToolError, match=r"refused http://169\.254\.169\.254/.*link-local"):
        await getter.fetch(f"{server.base}/to-metadata")
    with pytest.raises(ToolError, match=r"refused http://10\.255\.255\.1/.*private"):
        await getter.fetch(f"{server.base}/to-ten")
    # Allowing one port of 127.0.0.1 does not allow a redirect to another one.
    only_port = _getter(allowed=[f"127.0.0.1:{server.port}"])
    with pytest.raises(ToolError, match=r"refused http://127\.0\.0\.1:1/.*loopback"):
        await only_port.fetch(f"{server.base}/to-port-1")
    assert "/hello" not in server.paths[2:]
    with pytest.raises(ToolError, match="more than 2 redirects"):
        await _getter(allowed=["127.0.0.1"], http_max_redirects=2).fetch(f"{server.base}/loop")


async def test_whole_fetch_has_a_time_limit(server: RawHttpServer) -> None:
    getter = _getter(allowed=["127.0.0.1"], http_timeout_s=0.3)
    with pytest.raises(ToolError, match=r"took longer than 0\.3s"):
        await getter.fetch(f"{server.base}/slow")


async def test_refused_when_any_resolved_address_is_private() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    getter = HttpGet(ToolsConfig(), resolve=resolve)
    with pytest.raises(ToolError, match=r"resolves to 10\.0\.0\.5, a private address"):
        await getter.fetch("http://rebind.example/")


async def test_a_checked_name_is_pinned_to_the_checked_address() -> None:
    """The request goes to the IP that passed the check; Host and SNI keep the name."""
    seen: list[httpx.Request] = []
    answers = {"public.example": ["93.184.216.34"], "internal.example": ["10.9.8.7"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/go-inside":
            return httpx.Response(302, headers={"Location": "http://internal.example/secret"})
        return httpx.Response(200, text="ok", headers={"Content-Type": "text/plain"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        getter = HttpGet(ToolsConfig(), client=client, resolve=resolve)
        result = await getter.fetch("https://public.example/page")
        assert result.text == "ok" and result.url == "https://public.example/page"
        request = seen[0]
        assert request.url.host == "93.184.216.34"
        assert request.headers["host"] == "public.example"
        assert request.extensions["sni_hostname"] == "public.example"
        with pytest.raises(ToolError, match=r"refused http://internal\.example/secret"):
            await getter.fetch("https://public.example/go-inside")
    assert len(seen) == 2


async def test_http_get_tool_records_refusals(server: RawHttpServer) -> None:
    registry = ToolRegistry([http_get_tool(ToolsConfig(allowed_hosts="127.0.0.1, example.org"))])
    ok = await registry.call("http_get", {"url": f"{server.base}/hello"})
    assert ok.ok and ok.result["status"] == 200
    refused = await registry.call("http_get", {"url": "http://10.0.0.1/"})
    assert refused.error is not None and "private address" in refused.error
