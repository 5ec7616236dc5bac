"""A browserless user agent on aiohttp: its own cookie jar, manual redirects that stay on the
server under test, and the page-contract parsing the hosted pages share (hidden inputs, form
actions). It never follows a redirect off the target's origin (the relying party's callback
is read from the ``Location`` header, not requested)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 12


@dataclass(frozen=True)
class Reply:
    """A response read to the end."""

    status: int
    url: str
    location: str | None
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def absolute_location(self) -> str | None:
        return urljoin(self.url, self.location) if self.location else None


def unescape(value: str) -> str:
    """HTML attribute text back to the value (the few entities Jinja/escape-html emit)."""
    return (value.replace("&#34;", '"').replace("&#39;", "'").replace("&quot;", '"')
            .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def hidden_inputs(html: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in HIDDEN_INPUT.findall(html)}


def find_form(html: str, action_contains: str) -> tuple[str, dict[str, str]]:
    """The first POST form whose action contains ``action_contains``: (action, hidden fields)."""
    for action, body in FORM.findall(html):
        if action_contains in action:
            return unescape(action), hidden_inputs(body)
    raise ValueError(f"no form posting to *{action_contains}* (page starts {html[:160]!r})")


def query_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


class Browser:
    """One user agent (one cookie jar) sharing the run's connection pool."""

    def __init__(self, connector: aiohttp.BaseConnector, base_url: str,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base_url))
        self.jar = aiohttp.CookieJar(unsafe=True)
        self.session = aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=self.jar,
            timeout=aiohttp.ClientTimeout(total=timeout))
        # The relying party's own calls (token, userinfo, introspection) carry no browser
        # cookies, as from a real RP's server.
        self.backchannel = aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=timeout))

    def absolute(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else urljoin(self.base_url + "/",
                                                                          url)

    async def request(self, method: str, url: str, *, data: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None,
                      backchannel: bool = False) -> Reply:
        """One request, read to the end; ``backchannel`` sends it without the cookies."""
        absolute = self.absolute(url)
        if not absolute.startswith(self.origin + "/"):
            raise ValueError(f"refusing to leave the server under test: {absolute}")
        session = self.backchannel if backchannel else self.session
        async with session.request(method, absolute, data=data, headers=headers,
                                   allow_redirects=False) as response:
            text = await response.text()
            return Reply(response.status, str(response.url), response.headers.get("Location"),
                         text)

    async def get(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, data: dict[str, str], **kwargs: Any) -> Reply:
        return await self.request("POST", url, data=data, **kwargs)

    async def follow(self, reply: Reply, stop_at: str) -> Reply:
        """Follow redirects on the target's origin; stop at ``stop_at`` (the client's redirect
        URI) or at any other origin, returning that redirect unread."""
        for _ in range(MAX_REDIRECTS):
            location = reply.absolute_location
            if reply.status not in REDIRECTS or not location:
                return reply
            if location.startswith(stop_at) or not location.startswith(self.origin + "/"):
                return reply
            reply = await self.get(location)
        raise ValueError("too many redirects")

    def clear_cookies(self) -> None:
        """A new browser: forget every cookie (sessions, interactions)."""
        self.jar.clear()

    async def close(self) -> None:
        await self.session.close()
        await self.backchannel.close()
