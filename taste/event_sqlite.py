"""The embedded default events store: one SQLite file under ``var_dir``.

Why this shape: SQLite in WAL mode lets gunicorn's worker processes (and the
threads inside each) write one file at once: readers never block, writers
queue on SQLite's own lock (``busy_timeout``) instead of failing. Idempotency
is the table's ``UNIQUE (user_id, event_id)`` with ``INSERT OR IGNORE``, so a
retry racing its original in another process still records one event.
``synchronous=FULL`` makes every acknowledged event survive a power cut, like
the embedded index. ``seq`` (the rowid) keeps insertion order for ties in
``at``, the protocol's ordering.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from eyepic.sqlite_files import open_shared_sqlite
from taste.events import Event, EventStoreUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    item_id TEXT NOT NULL,
    at REAL NOT NULL,
    UNIQUE (user_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, at, seq);
"""
BUSY_TIMEOUT_MS = 10_000  # other workers' writes are milliseconds; 10 s means something is stuck


class SQLiteEventStore:
    """Events in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = open_shared_sqlite(self.path, _SCHEMA, BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise EventStoreUnavailable(f"cannot open the events file {self.path}: {exc}") from exc

    def _run(self, what: str, sql: str, args: tuple = ()) -> tuple[list[tuple], int]:
        """Rows and rowcount of one statement (autocommit: each write is its own transaction)."""
        try:
            with self._lock:
                cursor = self._db.execute(sql, args)
                return cursor.fetchall(), cursor.rowcount
        except sqlite3.Error as exc:
            raise EventStoreUnavailable(f"events file {self.path}: cannot {what}: {exc}") from exc

    def add(self, event: Event) -> bool:
        _, count = self._run("record an event",
                           "INSERT OR IGNORE INTO events (user_id, event_id, kind, item_id, at) VALUES (?, ?, ?, ?, ?)",
                           (event.user_id, event.event_id, event.kind, event.item_id, float(event.at)))
        return count == 1

    def events(self, user_id: str) -> list[Event]:
        rows, _ = self._run("read events", "SELECT user_id, kind, item_id, at, event_id FROM events "
                                           "WHERE user_id = ? ORDER BY at, seq", (user_id,))
        return [Event(*row) for row in rows]

    def users(self) -> list[str]:
        rows, _ = self._run("list users", "SELECT DISTINCT user_id FROM events ORDER BY user_id")
        return [row[0] for row in rows]

    def forget(self, user_id: str) -> int:
        return self._run("forget a user", "DELETE FROM events WHERE user_id = ?", (user_id,))[1]

    def close(self) -> None:
        with self._lock:
            self._db.close()
