"""Plain HTTP for robots.txt and images: timeouts, retries with backoff, capped bodies.

Images are fetched here rather than through the browser so that their type,
size and pixels are checked before a byte is kept, and every redirect hop is
checked by the same ``UrlPolicy`` as the first URL.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from crawler.polite import HostClock, Refused, UrlPolicy

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class FetchFailed(Exception):
    """A URL could not be fetched after retries; ``reason`` is its skip counter."""

    def __init__(self, reason: str, url: str, detail: str = ""):
        super().__init__(f"{reason}: {url} {detail}".strip())
        self.reason = reason
        self.url = url


@dataclasses.dataclass
class Response:
    url: str
    status: int
    content_type: str
    body: bytes


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, check: Callable[[str], None]):
        self._check = check

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        self._check(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Http:
    def __init__(self, user_agent: str, policy: UrlPolicy, clock: HostClock, timeout_s: float,
                 retries: int, backoff_s: float, sleep: Callable[[float], None] = time.sleep):
        self.user_agent = user_agent
        self.policy = policy
        self.clock = clock
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.retried = 0
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_CheckedRedirects(policy.check))

    def get(self, url: str, max_bytes: int, accept: str = "*/*", robots: bool = True) -> Response:
        """GET ``url`` (checked by the policy, robots.txt too unless ``robots`` is False);
        retried on timeouts, 429 and 5xx. Raises Refused or FetchFailed."""
        (self.policy.check if robots else self.policy.check_address)(url)
        for attempt in range(self.retries + 1):
            self.clock.wait(url, robots)
            wait = self.backoff_s * 2**attempt
            try:
                request = urllib.request.Request(url, headers={"User-Agent": self.user_agent, "Accept": accept})
                with self._opener.open(request, timeout=self.timeout_s) as reply:
                    body = reply.read(max_bytes + 1)
                    if len(body) > max_bytes:
                        raise FetchFailed("too-large", url, f"over {max_bytes} bytes")
                    return Response(reply.geturl(), reply.status, reply.headers.get_content_type(), body)
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS:
                    return Response(url, exc.code, exc.headers.get_content_type() if exc.headers else "", b"")
                wait = max(wait, _retry_after(exc.headers.get("Retry-After") if exc.headers else None))
                detail = f"HTTP {exc.code}"
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, Refused):
                    raise exc.reason from None
                detail = str(exc)
            if attempt < self.retries:
                self.retried += 1
                self._sleep(wait)
        raise FetchFailed("unreachable", url, detail)

    def robots_text(self, url: str) -> tuple[int, str]:
        try:
            reply = self.get(url, 512 * 1024, accept="text/plain", robots=False)
        except (FetchFailed, Refused):
            return 503, ""  # unreachable: UrlPolicy then assumes the site is closed
        return reply.status, reply.body.decode("utf-8", "replace")


def _retry_after(value: str | None) -> float:
    try:
        return min(float(value or 0), 60.0)
    except ValueError:
        return 0.0
