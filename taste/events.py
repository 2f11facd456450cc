"""What a shopper did to an item, and the store that keeps it.

The store is the seam between the API (which records events) and the taste
model (which reads them): SQLite in the embedded default, an Elasticsearch
index in production, ``MemoryEventStore`` for simulations and unit tests.
Every store keeps the same semantics, checked by one conformance suite:

* ``add`` is idempotent by ``(user_id, event_id)``: a retried request records
  nothing new and returns False.
* ``events`` returns one user's events oldest first (ties by insertion order).
* ``forget`` removes everything of one user and returns how many events went.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from typing import Protocol

EVENT_KINDS: tuple[str, ...] = ("view", "click", "like", "dislike", "save", "purchase")


class EventStoreUnavailable(RuntimeError):
    """The store cannot answer (its backend is down or its file cannot be written); APIs answer 503."""


@dataclasses.dataclass(frozen=True)
class Event:
    user_id: str
    kind: str  # one of EVENT_KINDS
    item_id: str
    at: float  # seconds since the epoch (UTC); the server's clock when the client gives none
    event_id: str  # the client's id for idempotent retries; the server makes one when absent

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; one of {', '.join(EVENT_KINDS)}")


class EventStore(Protocol):
    def add(self, event: Event) -> bool:
        """Record the event; False when this user already has an event with this ``event_id``."""
        ...

    def events(self, user_id: str) -> list[Event]:
        """This user's events, oldest first."""
        ...

    def users(self) -> list[str]:
        """Every user with at least one event."""
        ...

    def forget(self, user_id: str) -> int:
        """Delete every event of this user; the number deleted."""
        ...

    def close(self) -> None: ...


class MemoryEventStore:
    """An in-process store with the same semantics (simulations, unit tests); lost on exit."""

    def __init__(self, events: Iterable[Event] = ()):
        self._lock = threading.Lock()
        self._by_user: dict[str, list[Event]] = {}
        self._ids: set[tuple[str, str]] = set()
        for event in events:
            self.add(event)

    def add(self, event: Event) -> bool:
        key = (event.user_id, event.event_id)
        with self._lock:
            if key in self._ids:
                return False
            self._ids.add(key)
            events = self._by_user.setdefault(event.user_id, [])
            events.append(event)
            events.sort(key=lambda e: e.at)  # stable: ties keep insertion order
            return True

    def events(self, user_id: str) -> list[Event]:
        with self._lock:
            return list(self._by_user.get(user_id, ()))

    def users(self) -> list[str]:
        with self._lock:
            return sorted(self._by_user)

    def forget(self, user_id: str) -> int:
        with self._lock:
            events = self._by_user.pop(user_id, [])
            self._ids = {key for key in self._ids if key[0] != user_id}
            return len(events)

    def close(self) -> None:
        return None
