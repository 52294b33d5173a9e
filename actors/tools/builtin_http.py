"""`http_get`: fetch a public web page for a model, without becoming an SSRF proxy.

The address policy is `protocol.netguard` (shared with the ingress's LLM probe):
private, loopback, link-local and other non-public addresses are refused unless
`allowed_hosts` (`ACTORCHESTRA_ALLOWED_HOSTS`) lists them, and a checked host name is
pinned to the address that was checked (no DNS rebinding). On top of that, here:

- Redirects are followed by hand, at most `http_max_redirects`, and each target is
  checked the same way before it is fetched.
- The body is streamed and cut at `http_max_bytes` (the result says it was truncated);
  `Accept-Encoding: identity` keeps a small compressed body from inflating past that
  in a single chunk. The whole fetch, redirects included, has `http_timeout_s`.
- The default client is made with `trust_env=False` and no proxy (a proxy would connect
  for us, around the pinning); an injected client is trusted to be the same.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from pydantic import BaseModel

from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.actors.tools.errors import ToolError
from actorchestra.actors.tools.registry import Tool
from actorchestra.protocol.errors import AddressRefusedError
from actorchestra.protocol.netguard import NetGuard, Resolver, system_resolve

logger = logging.getLogger(__name__)

_TEXTUAL = ("json", "xml", "javascript", "yaml", "csv", "x-www-form-urlencoded")


class HttpGetResult(BaseModel):
    """What the model sees of a fetch."""

    url: str
    status: int
    content_type: str
    text: str | None
    truncated: bool
    bytes_read: int


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
        self._guard = NetGuard(config.allowed_hosts, resolve=resolve)

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
        headers = {"User-Agent": self._config.http_user_agent, "Accept-Encoding": "identity"}
        request = client.build_request("GET", url, headers=headers)
        try:
            return await self._guard.pin(request)
        except AddressRefusedError as exc:
            raise ToolError(exc.message) from None
        except OSError as exc:
            raise ToolError(f"cannot resolve {url.host!r}: {exc}") from None

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
