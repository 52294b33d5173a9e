"""`http_get`: fetch a public web page for a model, without becoming an SSRF proxy.

What it guards against, and how:

- Private, loopback, link-local, multicast, reserved, unspecified and otherwise
  non-global addresses are refused, including IPv4 addresses hidden in IPv6
  (IPv4-mapped, 6to4, Teredo, NAT64). The host is resolved first (non-blocking,
  `loop.getaddrinfo`) and the request is refused if *any* address is refused.
  `allowed_hosts` (from `ACTORCHESTRA_ALLOWED_HOSTS`) lifts the check for a host name
  or `name:port` as written in the URL, or for any name whose addresses all equal an
  allowed IP address (optionally `ip:port`) or fall inside an allowed CIDR network.
- DNS rebinding: for a checked host name the request goes to the IP address that was
  checked (the URL's host replaced by the IP, `Host` header and TLS SNI/certificate
  check still on the name), so a second, different DNS answer is never used.
  Residual risk: an injected `httpx.AsyncClient` configured with a proxy would let the
  proxy connect; the default client is made with `trust_env=False` and no proxy.
- Redirects are followed by hand, at most `http_max_redirects`, and each target is
  checked the same way before it is fetched.
- The body is streamed and cut at `http_max_bytes` (the result says it was truncated);
  `Accept-Encoding: identity` keeps a small compressed body from inflating past that
  in a single chunk. The whole fetch, redirects included, has `http_timeout_s`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel

from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.actors.tools.errors import ToolError
from actorchestra.actors.tools.registry import Tool

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TEXTUAL = ("json", "xml", "javascript", "yaml", "csv", "x-www-form-urlencoded")


class HttpGetResult(BaseModel):
    """What the model sees of a fetch."""

    url: str
    status: int
    content_type: str
    text: str | None
    truncated: bool
    bytes_read: int


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, via the loop's non-blocking getaddrinfo."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused_reason(address: IPAddress) -> str | None:
    """Why `address` must not be fetched from, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refused_reason(embedded)
            if inner is not None:
                return f"{inner} (IPv4 {embedded} inside IPv6)"
    for check, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, check):
            return reason
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _allowed(host: str, port: int, addresses: list[IPAddress], allowed: list[str]) -> bool:
    """Whether `allowed_hosts` lifts the address check for this host."""
    host = host.lower()
    for entry in allowed:
        if entry in (host, f"{host}:{port}", f"[{host}]:{port}"):
            return True
        if "/" in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if all(a in network for a in addresses):
                return True
            continue
        # An address entry (optionally with a port) allows every name that resolves to
        # exactly that address: allowing an address is about where we connect.
        address, entry_port = _split_host_port(entry)
        ip = _parse_ip(address)
        if ip is not None and entry_port in (None, port) and all(a == ip for a in addresses):
            return True
    return False


def _split_host_port(entry: str) -> tuple[str, int | None]:
    """`10.0.0.1:8080` -> ("10.0.0.1", 8080); `[::1]:80` -> ("::1", 80); bare -> port None."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return address, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        address, _, port = entry.partition(":")
        return address, int(port) if port.isdigit() else None
    return entry, None


class HttpGet:
    """The `http_get` tool's logic, holding its config, client and resolver.

    The client, if injected, is the caller's to close; otherwise one is made per fetch.
    The resolver is injectable so tests can simulate DNS answers without DNS.
    """

    def __init__(
        self,
        config: ToolsConfig,
        *,
        client: httpx.AsyncClient | None = None,
        resolve: Resolver = system_resolve,
    ) -> None:
        self._config = config
        self._client = client
        self._resolve = resolve

    async def fetch(self, url: str) -> HttpGetResult:
        """GET `url` within the limits; refusals and failures raise `ToolError`."""
        timeout = self._config.http_timeout_s
        try:
            async with asyncio.timeout(timeout):
                if self._client is not None:
                    return await self._follow(self._client, url)
                async with httpx.AsyncClient(
                    timeout=timeout, follow_redirects=False, trust_env=False
                ) as client:
                    return await self._follow(client, url)
        except TimeoutError:
            raise ToolError(f"fetching {url} took longer than {timeout:g}s") from None
        except httpx.HTTPError as exc:
            # httpx errors enter here; the model gets a message, not a traceback.
            raise ToolError(f"fetching {url} failed: {type(exc).__name__}: {exc}") from None

    async def _follow(self, client: httpx.AsyncClient, url: str) -> HttpGetResult:
        current = _parse_url(url)
        for _ in range(self._config.http_max_redirects + 1):
            request = await self._request_for(client, current)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    current = _parse_url(location, base=current)
                    continue
                return await self._read(current, response)
            finally:
                await response.aclose()
        raise ToolError(f"more than {self._config.http_max_redirects} redirects from {url}")

    async def _request_for(self, client: httpx.AsyncClient, url: httpx.URL) -> httpx.Request:
        """A request for `url` after its addresses pass the check, pinned to one of them."""
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            raw = await self._resolve(host, port)
        except OSError as exc:
            raise ToolError(f"cannot resolve {host!r}: {exc}") from None
        addresses = [a for a in (_parse_ip(r.split("%")[0]) for r in raw) if a is not None]
        if not addresses:
            raise ToolError(f"cannot resolve {host!r}: no addresses")
        headers = {
            "User-Agent": self._config.http_user_agent,
            "Accept-Encoding": "identity",
        }
        if _allowed(host, port, addresses, self._config.allowed_hosts):
            return client.build_request("GET", url, headers=headers)
        for address in addresses:
            reason = refused_reason(address)
            if reason is not None:
                raise ToolError(
                    f"refused {url}: {host} resolves to {address}, a {reason} address "
                    "(allow it with ACTORCHESTRA_ALLOWED_HOSTS if that is intended)"
                )
        if _parse_ip(host) is not None:
            return client.build_request("GET", url, headers=headers)
        # Pin the checked address: connect to the IP, keep the name for Host and TLS.
        headers["Host"] = url.netloc.decode("ascii")
        extensions: dict[str, Any] = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        pinned = url.copy_with(host=str(addresses[0]))
        return client.build_request("GET", pinned, headers=headers, extensions=extensions)

    async def _read(self, url: httpx.URL, response: httpx.Response) -> HttpGetResult:
        limit = self._config.http_max_bytes
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            room = limit - len(body)
            if len(chunk) > room:
                body.extend(chunk[:room])
                truncated = True
                break
            body.extend(chunk)
        content_type = response.headers.get("content-type", "")
        text: str | None = None
        if _is_textual(content_type):
            encoding = response.charset_encoding or "utf-8"
            try:
                text = bytes(body).decode(encoding, errors="replace")
            except LookupError:
                text = bytes(body).decode("utf-8", errors="replace")
        return HttpGetResult(
            url=str(url),
            status=response.status_code,
            content_type=content_type,
            text=text,
            truncated=truncated,
            bytes_read=len(body),
        )


def _parse_url(url: str, base: httpx.URL | None = None) -> httpx.URL:
    try:
        parsed = httpx.URL(url) if base is None else base.join(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ToolError(f"not a valid URL: {url!r} ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs can be fetched, not {parsed.scheme!r}")
    if not parsed.host:
        raise ToolError(f"URL has no host: {url!r}")
    return parsed


def _is_textual(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return not kind or kind.startswith("text/") or any(t in kind for t in _TEXTUAL)


def http_get_tool(
    config: ToolsConfig,
    *,
    client: httpx.AsyncClient | None = None,
    resolve: Resolver = system_resolve,
) -> Tool:
    """The `http_get` tool over an `HttpGet` built from `config`."""
    getter = HttpGet(config, client=client, resolve=resolve)

    async def http_get(url: str) -> dict[str, Any]:
        return (await getter.fetch(url)).model_dump()

    return Tool(
        name="http_get",
        description=(
            "Fetch a public http(s) URL with GET and return its status, content type and "
            f"text (at most {config.http_max_bytes} bytes; `truncated` says if cut). "
            "Private and local network addresses are refused."
        ),
        parameters={
            "type": "object",
            "properties": {"url": {"type": "string", "description": "absolute http(s) URL"}},
            "required": ["url"],
            "additionalProperties": False,
        },
        fn=http_get,
        timeout_s=config.http_timeout_s + 5.0,
    )
