"""Recording and forgetting shoppers' events, written once for the web and gRPC APIs.

``EventService`` validates raw fields (every bad one named at once, as
``services.requests`` does for search), checks that the item exists in the
catalog (``ItemNotFound``, 404) and writes to the events store. Who may
write is not its business: the fronts ask ``services.access`` first.
Errors: ``InvalidRequest``, ``ItemNotFound``, and, passed through,
``EventStoreUnavailable`` and ``IndexUnavailable`` (retry later).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from eyepic.settings import Settings
from indexer.base import Index
from services.requests import InvalidRequest, ItemNotFound, Problems
from taste.events import EVENT_KINDS, Event, EventStore

USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_ITEM_ID_CHARS = 512
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()  # older: a unit mistake, not an event
EVENT_FIELDS = ("kind", "item_id", "at", "event_id")
USER_ID_RULE = "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
EVENT_ID_RULE = "1-128 characters: letters, digits, '.', '_', ':' or '-', starting with a letter or digit"


@dataclasses.dataclass(frozen=True)
class Recorded:
    """The event as stored and whether this request recorded it (False: a retry, already there)."""

    event: Event
    created: bool


def check_user_id(user_id: Any, problems: Problems) -> str:
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        problems.add("user_id", f"must be {USER_ID_RULE}")
        return ""
    return user_id


def valid_user_id(user_id: str) -> str:
    """The user id, or InvalidRequest naming it."""
    problems = Problems()
    check_user_id(user_id, problems)
    problems.raise_if_any()
    return user_id


def parse_at(raw: Any, now: float, skew_s: float, problems: Problems) -> float:
    """Seconds since the epoch from a number or an ISO-8601 string (no zone: UTC); absent: now."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return now
    at: float | None = None
    if isinstance(raw, bool):
        at = None
    elif isinstance(raw, int | float):
        at = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            at = float(text)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            except ValueError:
                at = None
            else:
                at = (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
    if at is None or not math.isfinite(at):
        problems.add("at", f"must be an ISO-8601 time or seconds since the epoch, not {raw!r}")
        return now
    if at > now + skew_s:
        problems.add("at", f"lies {at - now:.0f} s in the future (at most {skew_s:.0f} s of clock skew)")
    elif at < EARLIEST:
        problems.add("at", "lies before 2000-01-01: give seconds (not milliseconds) since the epoch")
    return at


class EventService:
    """Validate, record, list and forget shoppers' events over one index and one store."""

    def __init__(self, settings: Settings, index: Index, store: EventStore,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.index = index
        self.store = store
        self.clock = clock

    def event(self, user_id: str, fields: Mapping[str, Any]) -> Event:
        """A validated event from raw fields (HTTP's JSON body, gRPC's message), or InvalidRequest."""
        problems = Problems()
        user = check_user_id(user_id, problems)
        for name in fields:
            if name not in EVENT_FIELDS:
                problems.add(name, f"unknown field; the fields are {', '.join(EVENT_FIELDS)}")
        kind = fields.get("kind")
        if kind is None or kind == "":
            problems.add("kind", f"missing; one of {', '.join(EVENT_KINDS)}")
        elif kind not in EVENT_KINDS:
            problems.add("kind", f"unknown {kind!r}; one of {', '.join(EVENT_KINDS)}")
        item_id = fields.get("item_id")
        if item_id is None or item_id == "":
            problems.add("item_id", "missing: the catalog id of the item")
        elif not isinstance(item_id, str) or len(item_id) > MAX_ITEM_ID_CHARS:
            problems.add("item_id", f"must be a string of at most {MAX_ITEM_ID_CHARS} characters")
        at = parse_at(fields.get("at"), self.clock(), self.settings.event_clock_skew_s, problems)
        event_id = fields.get("event_id")
        if event_id is None or event_id == "":
            event_id = uuid.uuid4().hex
        elif not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
            problems.add("event_id", f"must be {EVENT_ID_RULE}")
        problems.raise_if_any()
        if self.index.get(item_id) is None:
            raise ItemNotFound(item_id)
        return Event(user_id=user, kind=kind, item_id=item_id, at=at, event_id=event_id)

    def record(self, event: Event) -> Recorded:
        """Store the event; ``created`` is False when a retry finds it already recorded (then the
        answer is the event as first recorded, so a retry reads the same as the original)."""
        if self.store.add(event):
            return Recorded(event, True)
        stored = next((e for e in self.store.events(event.user_id) if e.event_id == event.event_id), event)
        return Recorded(stored, False)

    def history(self, user_id: str) -> list[Event]:
        return self.store.events(valid_user_id(user_id))

    def forget(self, user_id: str) -> int:
        """Delete everything of this shopper; the number of events that went."""
        return self.store.forget(valid_user_id(user_id))


__all__ = ["EventService", "InvalidRequest", "ItemNotFound", "Recorded", "valid_user_id"]
