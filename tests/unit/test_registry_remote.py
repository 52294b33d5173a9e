"""Third-party agents by card URL: the registry fetches only where it may (SSRF guard).

The registry service runs in this process without Ray (registration and probes need
none); the "third party" is a small HTTP server on loopback that records every request
(the `card_server` fixture), so a test sees what the guard let through. Loopback is
refused by default: each test that means to reach the server allows exactly its
`127.0.0.1:<port>`.
"""

from __future__ import annotations

import re

import pytest
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH

from actorchestra.actors.registry_service import RegistryService
from actorchestra.protocol.errors import AddressRefusedError, InvalidInputError
from actorchestra.registry.models import Health
from tests.unit.card_server import CardServer


def registry(allowed: list[str] | None = None, **dns: str) -> RegistryService:
    """A registry whose resolver answers `dns` (name -> address) and literal IPs only."""

    async def resolve(host: str, port: int) -> list[str]:
        if host in dns:
            return [dns[host]]
        if host.replace(".", "").isdigit() or ":" in host:
            return [host]
        raise OSError(f"{host} does not resolve")

    return RegistryService(
        "test", probe_timeout_s=2.0, allowed_hosts=allowed or [], resolve=resolve
    )


async def test_a_loopback_card_url_is_refused_by_default_naming_the_setting(
    card_server: CardServer,
) -> None:
    with pytest.raises(AddressRefusedError) as info:
        await registry().register_remote(card_server.card_url)
    assert info.value.http_status == 403
    message = info.value.message
    assert "127.0.0.1, a loopback address" in message
    assert "ACTORCHESTRA_ALLOWED_HOSTS" in message
    assert "runtime.agent.tools.allowed_hosts" in message
    assert card_server.paths == []  # refused before connecting


@pytest.mark.parametrize(
    ("url", "dns", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/card.json", {}, "link-local"),  # metadata
        ("http://10.0.0.7:8080/", {}, "private"),
        ("http://[::ffff:127.0.0.1]:9/", {}, "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("https://agents.example.com/", {"agents.example.com": "192.168.4.2"}, "private"),
    ],
)
async def test_private_and_metadata_addresses_are_refused(
    url: str, dns: dict[str, str], reason: str
) -> None:
    with pytest.raises(AddressRefusedError, match=re.escape(f"a {reason} address")):
        await registry(**dns).register_remote(url)


async def test_an_allowed_host_registers(card_server: CardServer) -> None:
    service = registry([card_server.allowed])
    row = await service.register_remote(card_server.card_url, "forecast-remote")
    assert row["name"] == "forecast-remote" and row["kind"] == "remote"
    assert row["endpoint"] == card_server.base
    assert card_server.paths == [AGENT_CARD_WELL_KNOWN_PATH]
    # Allowed by address, any name that resolves to it only: another port is refused.
    other = registry(["127.0.0.1:1"])
    with pytest.raises(AddressRefusedError):
        await other.register_remote(card_server.card_url)


async def test_a_redirect_to_a_refused_address_is_not_followed(card_server: CardServer) -> None:
    card_server.redirect_to = f"http://127.0.0.2:{card_server.port}{AGENT_CARD_WELL_KNOWN_PATH}"
    with pytest.raises(AddressRefusedError, match=re.escape("127.0.0.2, a loopback address")):
        await registry([card_server.allowed]).register_remote(f"{card_server.base}/hop/card.json")
    assert card_server.paths == ["/hop/card.json"]


async def test_a_card_url_that_does_not_resolve_is_unreadable_not_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        await registry().register_remote("http://nowhere.invalid/card.json")
    assert not isinstance(info.value, AddressRefusedError)
    assert "could not read an A2A agent card" in info.value.message


async def test_probes_follow_the_allow_list_too(card_server: CardServer) -> None:
    """Registered while allowed; once the list no longer names it, probes stop reaching it."""
    service = registry([card_server.allowed])
    await service.register_remote(card_server.card_url, "forecast-remote")
    await service.check_health()
    assert service.get("forecast-remote").health == Health.HEALTHY
    service.set_allowed_hosts([])
    await service.check_health()
    entry = service.get("forecast-remote")
    assert entry.health == Health.UNHEALTHY
    assert "a loopback address" in (entry.replicas[0].last_error or "")
    assert card_server.paths == [AGENT_CARD_WELL_KNOWN_PATH] * 2
