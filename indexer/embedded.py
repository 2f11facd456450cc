"""The embedded default index: SQLite for documents, faiss for exact kNN.

Why this shape: SQLite (WAL, synchronous=FULL) makes every acknowledged
upsert durable and atomic per batch, with no server. Vectors live in the same
rows, so a crash can never leave a document without its vector. At search
time the vectors are held in a faiss ``IndexFlatIP`` (exact inner product)
and filters become an ``IDSelectorBitmap``: the filtered top-k is computed
directly, never a post-filtered top-k that comes back short. The in-memory
copy reloads when SQLite's ``data_version`` says another connection (the
indexer process) wrote.

Faults: SQLite's errors (the file locked by another program, a full disk)
become ``IndexUnavailable`` (one CLI line, a 503); a failed batch rolls back
whole, so the file keeps what it held (SQLite's WAL is the temp-file, fsync
and rename of a plain file). A file locked when the index is built is opened
at the first call that can, so a web tier started meanwhile recovers alone.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np

from eyepic.schema import Filters, Hit, Item
from eyepic.sqlite_files import open_shared_sqlite
from indexer.base import IndexUnavailable, KnnQuery, normalise
from indexer.documents import item_document, item_from_document
from indexer.writer_lock import file_lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    type TEXT NOT NULL,
    color TEXT NOT NULL,
    shop TEXT NOT NULL,
    doc TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_FILTER_COLUMNS = {"group": "grp", "type": "type", "color": "color", "shop": "shop"}
ITEM_CACHE = 20_000  # parsed hits kept between searches (recommendations ask for the same items often)


class EmbeddedIndex:
    """On-disk index in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._open()
        except IndexUnavailable:
            pass  # locked or unreadable now: opened at the first call that can (503 until then)
        self._loaded_version: tuple[int, int] | None = None
        self._writes = 0
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._attrs: dict[str, np.ndarray] = {}
        self._products: np.ndarray = np.zeros(0, dtype=object)
        self._faiss: faiss.IndexFlatIP | None = None
        self._items: collections.OrderedDict[str, Item] = collections.OrderedDict()

    @contextlib.contextmanager
    def writer(self, model_version: str = "", lock_stale_s: float = 0.0) -> Iterator[EmbeddedIndex]:
        """This index, while this process holds its writer lock (``<file>.lock``): one
        ``eyepic index`` at a time; a second is refused with ``IndexBusy``. SQLite makes each
        batch atomic, so there is no staging copy; ``model_version`` and ``lock_stale_s``
        (the kernel frees a dead holder's lock) only match the Elasticsearch backend."""
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            yield self

    # -- writes ---------------------------------------------------------
    def upsert(self, items: Sequence[Item]) -> None:
        if not items:
            return
        dim = self.dim
        rows = []
        for item in items:
            vector = normalise(item.embedding).reshape(-1)
            if dim is None:
                dim = len(vector)
            if len(vector) != dim:
                raise IndexUnavailable(f"item {item.id!r} has a {len(vector)}-d vector; the index holds {dim}-d")
            rows.append(
                (item.id, item.product_id, item.group, item.type, item.color, item.shop,
                 json.dumps(item_document(item)), vector.tobytes())
            )
        with self._lock, self._errors("write"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?)", rows)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('dim', ?)", (str(dim),))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                    self._db.execute("ROLLBACK")
                raise
            self._writes += 1

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        with self._lock, self._errors("delete"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
                deleted = self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                    self._db.execute("ROLLBACK")
                raise
            self._writes += 1
        return deleted

    # -- reads ----------------------------------------------------------
    @property
    def dim(self) -> int | None:
        with self._lock, self._errors("read"):
            row = self._db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        return int(row[0]) if row else None

    def get(self, item_id: str) -> Item | None:
        with self._lock, self._errors("read"):
            row = self._db.execute("SELECT doc, vector FROM items WHERE id = ?", (item_id,)).fetchone()
        return _item(row[0], row[1]) if row else None

    def ids(self) -> set[str]:
        with self._lock, self._errors("read"):
            return {r[0] for r in self._db.execute("SELECT id FROM items")}

    def count(self, filters: Filters = Filters()) -> int:
        where, args = _where(filters)
        with self._lock, self._errors("count"):
            sql = f"SELECT COUNT(*) FROM items {where}"  # nosec B608 # fixed columns and "?" marks (_where)
            return self._db.execute(sql, args).fetchone()[0]

    def facets(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock, self._errors("facets"):
            for name, column in _FILTER_COLUMNS.items():
                sql = f"SELECT {column}, COUNT(*) FROM items GROUP BY {column}"  # nosec B608 # constant columns
                rows = self._db.execute(sql)
                out[name] = {value: n for value, n in rows if value}
        return out

    def search(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters = Filters(),
        exclude_ids: Iterable[str] = (),
        collapse: bool = True,
    ) -> list[Hit]:
        if k < 1:
            raise ValueError("k must be at least 1")
        with self._lock, self._errors("search"):
            self._refresh()
            n = len(self._ids)
            if n == 0 or self._faiss is None:
                return []
            query = normalise(vector).reshape(1, -1)
            if query.shape[1] != self._faiss.d:
                raise IndexUnavailable(f"query is {query.shape[1]}-d; the index holds {self._faiss.d}-d")
            mask = self._mask(filters, exclude_ids)
            available = int(mask.sum())
            if available == 0:
                return []
            # Keep the bitmap referenced: the selector holds a raw pointer into it, and a
            # temporary would be freed before the search reads it (wrong-filter hits).
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
            params = faiss.SearchParameters(sel=selector)
            fetch = min(available, k if not collapse else k * 4)
            while True:
                scores, rows = self._faiss.search(query, fetch, params=params)
                hits = self._hits(scores[0], rows[0], k, collapse)
                if len(hits) >= k or fetch >= available:
                    break
                fetch = min(available, fetch * 4)
            return [Hit(item=self._load_item(self._ids[row]), score=score) for row, score in hits]

    def search_many(self, queries: Sequence[KnnQuery], exclude_ids: Iterable[str] = (),
                    collapse: bool = True) -> list[list[Hit]]:
        """In process there is no round trip to save: each query in turn, under one lock."""
        exclude = list(exclude_ids)
        with self._lock:
            return [self.search(q.vector, q.k, q.filters, exclude, collapse) for q in queries]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals ------------------------------------------------------
    @property
    def _db(self) -> sqlite3.Connection:
        return self._conn if self._conn is not None else self._open()

    def _open(self) -> sqlite3.Connection:
        with self._lock, self._errors("open"):
            if self._conn is None:
                self._conn = open_shared_sqlite(self.path, _SCHEMA)
            return self._conn

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """SQLite's own errors (locked by another process, disk full, unreadable file) become
        IndexUnavailable: one line from the CLI, 503 from the APIs. A failed write rolls back
        whole (SQLite's journal), so the index keeps what it held before."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:  # OSError: the folder or the open lock cannot be made
            hint = ""
            if "disk" in str(exc) or "full" in str(exc):
                hint = " (is the disk full?)"
            elif "locked" in str(exc):
                hint = " (another process holds a lock on the file)"
            raise IndexUnavailable(f"embedded index {self.path}: {what}: {exc}{hint}") from exc

    def _hits(self, scores: np.ndarray, rows: np.ndarray, k: int, collapse: bool) -> list[tuple[int, float]]:
        hits: list[tuple[int, float]] = []
        seen: set[str] = set()
        for score, row in zip(scores, rows):
            if row < 0:
                break
            if collapse:
                product = self._products[row]
                if product in seen:
                    continue
                seen.add(product)
            hits.append((int(row), float(score)))
            if len(hits) == k:
                break
        return hits

    def _mask(self, filters: Filters, exclude_ids: Iterable[str]) -> np.ndarray:
        mask = np.ones(len(self._ids), dtype=bool)
        for name in _FILTER_COLUMNS:
            wanted = getattr(filters, name)
            if wanted:
                mask &= np.isin(self._attrs[name], list(wanted))
        for item_id in exclude_ids:
            row = self._rows.get(item_id)
            if row is not None:
                mask[row] = False
        return mask

    def _refresh(self) -> None:
        version = (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if version == self._loaded_version:
            return
        rows = self._db.execute(
            "SELECT id, product_id, grp, type, color, shop, vector FROM items ORDER BY rowid"
        ).fetchall()
        self._ids = [r[0] for r in rows]
        self._rows = {item_id: i for i, item_id in enumerate(self._ids)}
        self._products = np.array([r[1] for r in rows], dtype=object)
        self._attrs = {
            name: np.array([r[2 + i] for r in rows], dtype=object)
            for i, name in enumerate(_FILTER_COLUMNS)
        }
        if rows:
            matrix = np.frombuffer(b"".join(r[6] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            self._faiss = faiss.IndexFlatIP(matrix.shape[1])
            self._faiss.add(np.ascontiguousarray(matrix))
        else:
            self._faiss = None
        self._items.clear()
        self._loaded_version = version

    def _load_item(self, item_id: str) -> Item:
        """The item of a hit; parsed rows are cached until the index changes (a copy each time:
        callers may change what they get)."""
        item = self._items.get(item_id)
        if item is None:
            row = self._db.execute("SELECT doc, vector FROM items WHERE id = ?", (item_id,)).fetchone()
            item = _item(row[0], row[1])
            self._items[item_id] = item
            while len(self._items) > ITEM_CACHE:
                self._items.popitem(last=False)
        return copy.copy(item)


def _item(doc_json: str, vector: bytes) -> Item:
    return item_from_document(json.loads(doc_json), np.frombuffer(vector, dtype=np.float32).copy())


def _where(filters: Filters) -> tuple[str, list[str]]:
    clauses, args = [], []
    for name, column in _FILTER_COLUMNS.items():
        wanted = getattr(filters, name)
        if wanted:
            clauses.append(f"{column} IN ({','.join('?' * len(wanted))})")
            args.extend(wanted)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args
