"""Where the runtime may connect on a caller's behalf: public addresses, and an allow-list.

Every outbound request whose URL a caller or a model chose (the `http_get` tool, the
`/v1/llm/test-connection` probe) goes through one `NetGuard`, so the runtime does not
become a proxy into the network it runs in (SSRF):

- Private, loopback, link-local (cloud metadata, 169.254.169.254), multicast, reserved,
  unspecified and otherwise non-global addresses are refused, including IPv4 addresses
  hidden in IPv6 (IPv4-mapped, 6to4, Teredo, NAT64). The host is resolved first
  (non-blocking, `loop.getaddrinfo`) and refused if *any* of its addresses is refused.
- `allowed` (`ACTORCHESTRA_ALLOWED_HOSTS`, plus whatever the caller trusts, such as
  the configured LLM endpoint) lifts the check for a host name or `name:port` as written
  in the URL, or for any name whose addresses all equal an allowed IP address
  (optionally `ip:port`) or fall inside an allowed CIDR network.
- DNS rebinding: a checked host name is pinned to the address that was checked (the
  URL's host replaced by the IP; `Host` header and TLS SNI/certificate check still on
  the name), so a second, different DNS answer is never connected to.

`NetGuard.pin(request)` checks and pins one `httpx.Request`; `GuardedTransport` does
that for every request a client sends, redirects included, for clients (the `openai`
one) whose requests are built out of sight. Residual risk: a client configured with a
proxy lets the proxy connect; both users here make theirs with `trust_env=False`.

Here, below every layer that reaches out, so that tools, the ingress and (later) the
registry's card fetches share one policy; it needs only the standard library and httpx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

import httpx

from actorchestra.protocol.errors import AddressRefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_HINT = "allow it with ACTORCHESTRA_ALLOWED_HOSTS if that is intended"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, via the loop's non-blocking getaddrinfo."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused_reason(address: IPAddress) -> str | None:
    """Why `address` must not be connected to, or None if it is public."""
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


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def split_host_port(entry: str) -> tuple[str, int | None]:
    """`10.0.0.1:8080` -> ("10.0.0.1", 8080); `[::1]:80` -> ("::1", 80); bare -> port None."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return address, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        address, _, port = entry.partition(":")
        return address, int(port) if port.isdigit() else None
    return entry, None


def host_allowed(
    host: str, port: int, addresses: Sequence[IPAddress], allowed: Sequence[str]
) -> bool:
    """Whether an `allowed` entry lifts the address check for this host and port."""
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
        address, entry_port = split_host_port(entry)
        ip = parse_ip(address)
        if ip is not None and entry_port in (None, port) and all(a == ip for a in addresses):
            return True
    return False


def origin_entry(url: str) -> str | None:
    """The `host:port` allow-list entry for exactly `url`'s origin; None if it has no host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if not parsed.host:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.host.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NetGuard:
    """The address policy with its allow-list, resolver and refusal hint.

    `hint` ends every refusal message: it tells the operator which setting allows the
    address, and differs by caller (the tool's setting, the probe's settings).
    The resolver is injectable so tests can simulate DNS answers without DNS.
    """

    def __init__(
        self,
        allowed: Sequence[str] = (),
        *,
        resolve: Resolver = system_resolve,
        hint: str = DEFAULT_HINT,
    ) -> None:
        self.allowed: list[str] = []
        self.set_allowed(allowed)
        self._resolve = resolve
        self._hint = hint

    def set_allowed(self, allowed: Sequence[str]) -> None:
        """Replace the allow-list; requests checked from now on follow the new one."""
        self.allowed = [a.strip().lower() for a in allowed if a.strip()]

    async def check(self, url: httpx.URL) -> IPAddress | None:
        """The address to connect to for `url`, or None to connect to the URL as written.

        None when the host is allowed or is an IP literal (nothing to rebind). Raises
        `AddressRefusedError` for a refused address and `OSError` when the host does not
        resolve (the caller decides whether that is a refusal or just unreachable).
        """
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        raw = await self._resolve(host, port)
        addresses = [a for a in (parse_ip(r.split("%")[0]) for r in raw) if a is not None]
        if not addresses:
            raise OSError(f"{host!r} resolves to no addresses")
        if host_allowed(host, port, addresses, self.allowed):
            return None
        for address in addresses:
            reason = refused_reason(address)
            if reason is not None:
                raise AddressRefusedError(
                    f"refused {url}: {host} resolves to {address}, a {reason} address "
                    f"({self._hint})"
                )
        if parse_ip(host) is not None:
            return None
        return addresses[0]

    async def pin(self, request: httpx.Request) -> httpx.Request:
        """Check `request`'s target and pin it to the checked address (in place; returned)."""
        address = await self.check(request.url)
        if address is None:
            return request
        host = request.url.host
        # Connect to the IP, keep the name for the Host header and for TLS.
        request.headers["Host"] = request.url.netloc.decode("ascii")
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = request.url.copy_with(host=str(address))
        return request


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that puts every request, redirects included, through a guard.

    A refusal raises `AddressRefusedError` out of `handle_async_request`; a client that
    wraps transport failures (openai's does) reports it as a connection failure.
    """

    def __init__(self, guard: NetGuard, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpx.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            await self._guard.pin(request)
        except OSError as exc:
            raise httpx.ConnectError(
                f"cannot resolve {request.url.host!r}: {exc}", request=request
            ) from exc
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
