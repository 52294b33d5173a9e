"""The shared address policy as a transport: every request checked and pinned, redirects too.

(The policy's address table is exercised through `http_get` in test_tools_http.py.)
Name resolution goes through an injected resolver and the network through
`httpx.MockTransport`: nothing here leaves the process.
"""

from __future__ import annotations

import httpx
import pytest

from actorchestra.protocol.errors import AddressRefusedError, ForbiddenError, to_a2a_error
from actorchestra.protocol.netguard import (
    GuardedTransport,
    NetGuard,
    Resolver,
    origin_entry,
    parse_ip,
)

PUBLIC = "93.184.216.34"


def resolver(answers: dict[str, list[list[str]]]) -> Resolver:
    """A resolver giving each name its next answer (the last one repeats); IPs are themselves."""

    async def resolve(host: str, port: int) -> list[str]:
        if parse_ip(host) is not None:
            return [host]
        if host not in answers:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        queue = answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return resolve


def client(
    guard: NetGuard, seen: list[httpx.Request], **routes: httpx.Response
) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return routes.get(request.url.path, httpx.Response(200, json={"ok": True}))

    transport = GuardedTransport(guard, inner=httpx.MockTransport(handle))
    return httpx.AsyncClient(transport=transport, follow_redirects=True)


async def test_a_name_is_pinned_to_the_address_that_was_checked() -> None:
    # A rebinding DNS: public on the check, loopback afterwards. The connection goes to
    # the checked address, with the name kept for the Host header and TLS.
    guard = NetGuard(resolve=resolver({"api.example": [[PUBLIC], ["127.0.0.1"]]}))
    seen: list[httpx.Request] = []
    async with client(guard, seen) as http:
        r = await http.get("https://api.example/v1/models")
    assert r.status_code == 200
    assert seen[0].url.host == PUBLIC
    assert seen[0].headers["host"] == "api.example"
    assert seen[0].extensions["sni_hostname"] == "api.example"


async def test_a_redirect_to_a_private_address_is_refused_before_it_is_fetched() -> None:
    guard = NetGuard(resolve=resolver({"api.example": [[PUBLIC]]}), hint="set THE_SETTING")
    seen: list[httpx.Request] = []
    to_metadata = httpx.Response(
        307, headers={"location": "http://169.254.169.254/latest/meta-data/"}
    )
    async with client(guard, seen, **{"/v1/models": to_metadata}) as http:
        with pytest.raises(AddressRefusedError) as info:
            await http.get("http://api.example/v1/models")
    assert [r.url.host for r in seen] == [PUBLIC]
    assert "169.254.169.254, a link-local address (set THE_SETTING)" in info.value.message


async def test_an_allowed_host_is_connected_to_as_written() -> None:
    guard = NetGuard(["127.0.0.1:8099"], resolve=resolver({}))
    seen: list[httpx.Request] = []
    async with client(guard, seen) as http:
        assert (await http.get("http://127.0.0.1:8099/v1/models")).status_code == 200
        with pytest.raises(AddressRefusedError, match="a loopback address"):
            await http.get("http://127.0.0.1:8100/v1/models")  # the entry names one port
    assert [str(r.url) for r in seen] == ["http://127.0.0.1:8099/v1/models"]


async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    async with client(NetGuard(resolve=resolver({})), []) as http:
        with pytest.raises(httpx.ConnectError, match=r"cannot resolve 'nowhere\.invalid'"):
            await http.get("http://nowhere.invalid/")


@pytest.mark.parametrize(
    ("url", "entry"),
    [
        ("http://127.0.0.1:8099/v1", "127.0.0.1:8099"),
        ("https://API.example.com/v1", "api.example.com:443"),
        ("http://model/v1", "model:80"),
        ("http://[::1]:8000/v1", "[::1]:8000"),
        ("not a url at all", None),
    ],
)
def test_origin_entry_names_exactly_one_host_and_port(url: str, entry: str | None) -> None:
    assert origin_entry(url) == entry


def test_a_refused_address_is_a_403_and_invalid_params_over_a2a() -> None:
    error = AddressRefusedError("refused")
    assert isinstance(error, ForbiddenError)
    assert (error.http_status, error.reason) == (403, "ADDRESS_REFUSED")
    assert to_a2a_error(error).message == "refused"
