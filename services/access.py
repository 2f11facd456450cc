"""Who may write, and how often: API keys, anonymous session tokens, token-bucket rate limits.

Used by both fronts, so HTTP and gRPC accept the same credentials and
refuse alike:

* **API keys** (services calling Eyepic) from ``EYEPIC_API_KEYS`` and/or the
  file ``EYEPIC_API_KEYS_FILE``; a presented credential is compared with
  *every* key by ``hmac.compare_digest``, so timing tells nothing about which
  key or how much of one matched. A key may write any user.
* **Session tokens** (the page: a browser cannot hold an API key):
  ``POST /api/v1/session`` makes an anonymous random user id and the token
  ``HMAC-SHA256(secret, user id)``. Nothing is stored: any worker checks a
  token by recomputing it, as long as all share the secret (from settings,
  or a 0600 file under ``var_dir`` created once, atomically). A token writes
  and forgets only its own user.
* **Rate limits** on writes: a bucket per API key, per client IP (sessions
  and anything without a valid key) and per user (events). Buckets live in
  the process: behind N gunicorn workers a client may get up to N times the
  configured rate; the limits stop floods, they are not quotas.

No credential: ``Unauthenticated`` (401); a wrong one: ``Forbidden`` (403);
too many writes: ``RateLimited`` (429 with ``Retry-After``). Reads stay open.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import math
import os
import secrets
import threading
import time
from collections.abc import Callable

from eyepic.settings import Settings, SettingsError, parse_api_keys

SESSION_PREFIX = "anon-"
MAX_BUCKETS = 100_000  # oldest buckets are dropped beyond this: memory stays bounded under a flood of IPs


class Unauthenticated(PermissionError):
    """No credential came with a write (HTTP 401, gRPC UNAUTHENTICATED)."""


class Forbidden(PermissionError):
    """The credential is not a key, or a session token of another user (HTTP 403, gRPC PERMISSION_DENIED)."""


class RateLimited(RuntimeError):
    """Too many writes from one key, address or user (HTTP 429, gRPC RESOURCE_EXHAUSTED)."""

    def __init__(self, scope: str, retry_after_s: int):
        self.scope = scope
        self.retry_after_s = retry_after_s
        super().__init__(f"too many writes for this {scope}; retry in {retry_after_s} s")


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is writing: an API key (by its name) or the session of one user."""

    kind: str  # "key" | "session"
    name: str  # the key's name, or the session's user id


@dataclasses.dataclass(frozen=True)
class Session:
    user_id: str
    token: str


def credential_of(authorization: str | None, api_key: str | None) -> str | None:
    """The credential of a request: ``Authorization: Bearer <c>`` or ``X-API-Key: <c>``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


class RateLimiter:
    """Token buckets by key: ``rate`` tokens a second up to ``burst``; rate 0 never limits."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def wait(self, key: str) -> float:
        """Take one token; 0 when granted, else the seconds until one is there (nothing taken)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            return wait


def load_api_keys(settings: Settings) -> list[tuple[str, str]]:
    """``(name, key)`` from ``api_keys`` and the lines of ``api_keys_file``."""
    keys = parse_api_keys(settings.api_keys, "EYEPIC_API_KEYS")
    if settings.api_keys_file is not None:
        try:
            text = settings.api_keys_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"EYEPIC_API_KEYS_FILE: cannot read {settings.api_keys_file}: {exc}") from None
        keys += parse_api_keys(text, f"EYEPIC_API_KEYS_FILE {settings.api_keys_file}")
    return keys


def session_secret(settings: Settings) -> bytes:
    """The signing secret: from settings, else a 0600 file created once (atomically, so every
    gunicorn worker racing at start ends up with the same one)."""
    if settings.session_secret:
        return settings.session_secret.encode()
    path = settings.session_secret_path
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            try:
                os.link(scratch, path)  # fails if another worker won the race: theirs is used
            except FileExistsError:
                pass
            finally:
                scratch.unlink()
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"session secret file {path}: {exc}") from None
    if len(secret) < 32:
        raise SettingsError(f"session secret file {path} holds fewer than 32 characters")
    return secret.encode()


class AccessControl:
    """Decides whether a write may happen (shared by the web and gRPC fronts)."""

    def __init__(self, settings: Settings, keys: list[tuple[str, str]], secret: bytes,
                 clock: Callable[[], float] = time.monotonic):
        self._keys = [(name, key.encode()) for name, key in keys]
        self._secret = secret
        self.by_key = RateLimiter(settings.rate_key_per_s, settings.rate_key_burst, clock)
        self.by_ip = RateLimiter(settings.rate_ip_per_s, settings.rate_ip_burst, clock)
        self.by_user = RateLimiter(settings.rate_user_per_s, settings.rate_user_burst, clock)

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessControl:
        return cls(settings, load_api_keys(settings), session_secret(settings))

    def token(self, user_id: str) -> str:
        return hmac.new(self._secret, user_id.encode(), hashlib.sha256).hexdigest()

    def new_session(self, client_ip: str) -> Session:
        """A fresh anonymous user id and its token (rate-limited per address)."""
        self._take(self.by_ip, f"ip:{client_ip}", "client address")
        user_id = SESSION_PREFIX + secrets.token_urlsafe(16)
        return Session(user_id, self.token(user_id))

    def _key_name(self, credential: str) -> str | None:
        """The name of the key equal to ``credential``; every key is compared, whatever matches."""
        given = credential.encode()
        found = None
        for name, key in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = name
        return found

    def authorize_write(self, credential: str | None, user_id: str, client_ip: str, *, event: bool) -> Principal:
        """Who writes ``user_id``'s data, or Unauthenticated / Forbidden / RateLimited.

        The address bucket is charged before a wrong credential is refused,
        so guessing is throttled too; a valid key has its own bucket instead.
        """
        if credential is None:
            raise Unauthenticated("this write needs a credential: an API key or the user's session token, "
                                  "as 'Authorization: Bearer <credential>' or 'X-API-Key: <key>'")
        name = self._key_name(credential)
        if name is not None:
            principal = Principal("key", name)
            self._take(self.by_key, f"key:{name}", "API key")
        else:
            self._take(self.by_ip, f"ip:{client_ip}", "client address")
            if not hmac.compare_digest(credential.encode(), self.token(user_id).encode()):
                raise Forbidden(f"the credential is neither an API key nor the session token of user {user_id!r}")
            principal = Principal("session", user_id)
        if event:
            self._take(self.by_user, f"user:{user_id}", "user")
        return principal

    @staticmethod
    def _take(limiter: RateLimiter, key: str, scope: str) -> None:
        wait = limiter.wait(key)
        if wait > 0:
            raise RateLimited(scope, max(1, math.ceil(wait)))


__all__ = ["AccessControl", "Forbidden", "Principal", "RateLimited", "Session", "Unauthenticated",
           "credential_of"]
