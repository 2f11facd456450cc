"""Politeness and safety: which URLs may be fetched, when, and as whom.

Every URL the crawler touches (listing, product page, image, redirect target)
passes ``UrlPolicy.check``: http(s) only, no private or loopback addresses
unless the profile allows them, and robots.txt. ``HostClock`` spaces requests
to one host by the profile's delay or robots.txt's Crawl-delay, whichever is
longer, across threads.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class Refused(Exception):
    """A URL the crawler must not fetch; ``reason`` is the skip counter it goes to."""

    def __init__(self, reason: str, url: str):
        super().__init__(f"{reason}: {url}")
        self.reason = reason
        self.url = url


def canonical_url(url: str, drop_params: tuple[str, ...] = ()) -> str:
    """One spelling per page: lower-case scheme and host, no default port, no fragment,
    tracking parameters dropped and the rest sorted."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in {("http", 80), ("https", 443)} else f"{host}:{port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if not any(fnmatch.fnmatchcase(k.lower(), p) for p in drop_params))
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def _is_public(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return True  # the fetch itself will fail; nothing private is reached
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            return False
    return True


class UrlPolicy:
    """Scheme, address and robots.txt checks, with robots.txt read once per host."""

    def __init__(self, user_agent: str, allow_private: bool,
                 read_robots: Callable[[str], tuple[int, str]]):
        self.user_agent = user_agent
        self.allow_private = allow_private
        self._read_robots = read_robots  # robots URL -> (status, text), unchecked by robots itself
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._lock = threading.Lock()

    def check_address(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise Refused("scheme", url)
        if not self.allow_private and not _is_public(parts.hostname):
            raise Refused("private-address", url)

    def check(self, url: str) -> None:
        self.check_address(url)
        if not self.robots(url).can_fetch(self.user_agent, url):
            raise Refused("robots", url)

    def crawl_delay(self, url: str) -> float:
        delay = self.robots(url).crawl_delay(self.user_agent)
        return float(delay or 0.0)

    def robots(self, url: str) -> urllib.robotparser.RobotFileParser:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            if key not in self._robots:
                parser = urllib.robotparser.RobotFileParser(f"{key}/robots.txt")
                status, text = self._read_robots(f"{key}/robots.txt")
                if status in (401, 403) or status >= 500:
                    parser.disallow_all = True  # closed to robots, or unknown: assume closed (RFC 9309)
                elif status >= 400:
                    parser.allow_all = True  # no robots.txt: everything is allowed
                else:
                    parser.parse(text.splitlines())
                self._robots[key] = parser
            return self._robots[key]


class HostClock:
    """At most one request per ``delay`` seconds per host, shared by every thread."""

    def __init__(self, delay_s: float, crawl_delay: Callable[[str], float] = lambda url: 0.0):
        self.delay_s = delay_s
        self._crawl_delay = crawl_delay
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, url: str, robots: bool = True) -> None:
        """Sleep until ``url``'s host may be asked again (robots=False: for robots.txt itself)."""
        host = urlsplit(url).netloc
        delay = max(self.delay_s, self._crawl_delay(url) if robots else 0.0)
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + delay
        if start > now:
            time.sleep(start - now)
