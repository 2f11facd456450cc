"""Crawl state in one SQLite file: runs, the page queue, products and counters.

Each listing page is read and its products queued in one transaction, and each
product is finished (image saved, then committed) on its own, so a crawl
killed at any point resumes exactly where it stopped and never counts or
keeps a product twice. Products are keyed by canonical URL across runs: a
re-crawl updates what changed and marks what it no longer saw as vanished.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATE_FILE = "state.sqlite"  # inside a crawl's output folder

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT);
CREATE TABLE IF NOT EXISTS pages (
    seq INTEGER PRIMARY KEY, run INTEGER NOT NULL, url TEXT NOT NULL, listing INTEGER NOT NULL,
    page_no INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'queued', reason TEXT NOT NULL DEFAULT '',
    UNIQUE (run, url));
CREATE TABLE IF NOT EXISTS products (
    seq INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, id TEXT NOT NULL UNIQUE, data TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', image TEXT NOT NULL DEFAULT '',
    image_url TEXT NOT NULL DEFAULT '', details TEXT NOT NULL DEFAULT '{}', phash INTEGER,
    seen_run INTEGER NOT NULL, crawled_at TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS counters (run INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (run, name));
"""


class CrawlState:
    def __init__(self, path: Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        self.db.row_factory = sqlite3.Row

    def transaction(self) -> _Tx:
        """``with state.transaction():`` commits on success, rolls back on error."""
        self.db.execute("BEGIN")
        return _Tx(self.db)

    # -- runs ---------------------------------------------------------------
    def open_run(self, now: str) -> tuple[int, bool]:
        """(run id, resumed): the unfinished run if there is one, else a new one."""
        row = self.db.execute("SELECT id FROM runs WHERE finished_at IS NULL ORDER BY id DESC").fetchone()
        if row:
            return int(row["id"]), True
        return int(self.db.execute("INSERT INTO runs (started_at) VALUES (?)", (now,)).lastrowid), False

    def finish_run(self, run: int, now: str, mark_vanished: bool = True) -> int:
        """Close the run; products not seen in it become 'vanished' (when ``mark_vanished``). Returns how many."""
        with self.transaction():
            vanished = self.db.execute(
                "UPDATE products SET status='vanished' WHERE status='active' AND seen_run < ?",
                (run,)).rowcount if mark_vanished else 0
            self.db.execute("UPDATE runs SET finished_at=? WHERE id=?", (now, run))
        return vanished

    # -- pages --------------------------------------------------------------
    def queue_page(self, run: int, url: str, listing: int, page_no: int) -> bool:
        cur = self.db.execute("INSERT OR IGNORE INTO pages (run, url, listing, page_no) VALUES (?, ?, ?, ?)",
                              (run, url, listing, page_no))
        return cur.rowcount == 1

    def next_page(self, run: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM pages WHERE run=? AND status='queued' ORDER BY seq LIMIT 1",
                               (run,)).fetchone()

    def close_page(self, seq: int, status: str, reason: str = "") -> None:
        self.db.execute("UPDATE pages SET status=?, reason=? WHERE seq=?", (status, reason, seq))

    def failed_pages(self, run: int) -> int:
        """Pages of ``run`` skipped for another reason than robots.txt (unreachable, HTTP errors)."""
        return int(self.db.execute("SELECT COUNT(*) FROM pages WHERE run=? AND status='skipped' AND reason != 'robots'",
                                   (run,)).fetchone()[0])

    def page_counts(self, run: int) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) n FROM pages WHERE run=? GROUP BY status", (run,))
        return {r["status"]: r["n"] for r in rows}

    # -- products -----------------------------------------------------------
    def product(self, url: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM products WHERE url=?", (url,)).fetchone()

    def add_product(self, url: str, item_id: str, data: dict[str, Any], run: int) -> None:
        self.db.execute("INSERT INTO products (url, id, data, status, seen_run) VALUES (?, ?, ?, 'queued', ?)",
                        (url, item_id, json.dumps(data, sort_keys=True), run))

    def see_product(self, url: str, data: dict[str, Any], run: int, changed: bool) -> None:
        if changed:
            self.db.execute("UPDATE products SET data=?, seen_run=?, status='queued' WHERE url=?",
                            (json.dumps(data, sort_keys=True), run, url))
        else:
            self.db.execute("UPDATE products SET seen_run=?, status=CASE status WHEN 'vanished' THEN 'active' "
                            "ELSE status END WHERE url=?", (run, url))

    def queued_products(self) -> Iterator[sqlite3.Row]:
        return iter(self.db.execute("SELECT * FROM products WHERE status='queued' ORDER BY seq").fetchall())

    def settle_product(self, url: str, status: str, reason: str = "", details: dict[str, Any] | None = None,
                       image: str = "", image_url: str = "", phash: int | None = None, crawled_at: str = "") -> None:
        """A queued product's outcome; ``details`` is the card merged with its product page."""
        self.db.execute(
            "UPDATE products SET status=?, reason=?, details=?, image=?, image_url=?, phash=?, crawled_at=? "
            "WHERE url=?",
            (status, reason, json.dumps(details or {}, sort_keys=True), image, image_url, phash, crawled_at, url))

    def active_hashes(self) -> list[tuple[str, int]]:
        rows = self.db.execute("SELECT url, phash FROM products WHERE status='active' AND phash IS NOT NULL")
        return [(r["url"], int(r["phash"])) for r in rows]

    def products(self, statuses: tuple[str, ...]) -> list[sqlite3.Row]:
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT * FROM products WHERE status IN ({marks}) ORDER BY seq"  # nosec B608 # only "?" marks
        return self.db.execute(sql, statuses).fetchall()

    # -- counters -----------------------------------------------------------
    def count(self, run: int, name: str, n: int = 1) -> None:
        self.db.execute("INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT (run, name) DO UPDATE "
                        "SET value = value + excluded.value", (run, name, n))

    def counters(self, run: int) -> dict[str, int]:
        rows = self.db.execute("SELECT name, value FROM counters WHERE run=? ORDER BY name", (run,))
        return {r["name"]: r["value"] for r in rows}

    def close(self) -> None:
        self.db.close()


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def pages_done(out: Path) -> int:
    """Listing pages a crawl in ``out`` has finished, read without locking it (0 before it has
    any state): how a supervisor (the kill-and-resume test, the benchmark) watches a running crawl."""
    try:
        with sqlite3.connect(f"file:{Path(out) / STATE_FILE}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM pages WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0
