"""Third-party A2A agents: fetch and check their cards over HTTP.

A card URL is whatever the caller of `POST /v1/agents` names, and the registry fetches
it again on every health probe: the fetches go through a `NetGuard` (`card_client`),
so they reach public addresses and the configured allow-list only, never the network
the runtime runs in (SSRF). A refused address is an `AddressRefusedError` (403).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

import httpx
from a2a.types import a2a_pb2
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH

from actorchestra.protocol.errors import InvalidInputError
from actorchestra.protocol.netguard import GuardedTransport, NetGuard, Resolver, system_resolve

CARD_HINT = (
    "to register an agent there, add its host or host:port to ACTORCHESTRA_ALLOWED_HOSTS "
    "(runtime.agent.tools.allowed_hosts in the config file)"
)


def card_guard(allowed_hosts: Sequence[str], resolve: Resolver = system_resolve) -> NetGuard:
    """Where card fetches may go: public addresses, and `allowed_hosts`."""
    return NetGuard(allowed_hosts, resolve=resolve, hint=CARD_HINT)


def card_client(guard: NetGuard, timeout_s: float | httpx.Timeout) -> httpx.AsyncClient:
    """An HTTP client for card fetches and the calls to third-party agents (the
    planner's `RemoteAgentEndpoint`s): every request and redirect checked and pinned.

    It ignores proxy variables: a proxy would connect on its behalf, unchecked.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(guard),
        timeout=timeout_s,
        follow_redirects=True,
        trust_env=False,
    )


def split_card_url(card_url: str) -> tuple[str, str]:
    """(base URL, card path) of a card URL; a bare base URL gets the well-known path."""
    parsed = urllib.parse.urlparse(card_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInputError(f"card URL {card_url!r} must be an absolute http(s) URL")
    if parsed.path.endswith(".json"):
        base = f"{parsed.scheme}://{parsed.netloc}"
        return base, parsed.path
    base = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
    return base, AGENT_CARD_WELL_KNOWN_PATH


async def fetch_card(card_url: str, http: httpx.AsyncClient) -> a2a_pb2.AgentCard:
    """The agent card at `card_url`, via a2a-sdk's resolver; a clear error if unusable.

    `http` decides where the fetch may go (`card_client`): its guard's refusal comes out
    as the `AddressRefusedError` it is (a2a-sdk wraps only httpx's errors), a host that
    does not resolve as an unreadable card (422).
    """
    # Imported here: a2a-sdk's client package pulls in grpc (~10 MB), and this module is
    # loaded by every agent actor's process, which never fetches a card.
    from a2a.client import A2ACardResolver
    from a2a.client.errors import AgentCardResolutionError

    base, path = split_card_url(card_url)
    try:
        card = await A2ACardResolver(http, base, agent_card_path=path).get_agent_card()
    except (AgentCardResolutionError, httpx.HTTPError) as e:
        raise InvalidInputError(f"could not read an A2A agent card at {card_url}: {e}") from e
    if not card.name:
        raise InvalidInputError(f"the card at {card_url} has no name")
    return card
