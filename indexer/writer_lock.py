"""Who may write an index: one ``eyepic index`` at a time, per index.

Two indexers filling the same index would not corrupt documents (ids are
item ids) but would race on the alias swap and double the work, so a second
one is refused with ``IndexBusy`` naming the holder. Two locks, one per backend:

* embedded: ``fcntl.flock`` on ``<file>.lock`` beside the SQLite file. The
  kernel drops it when the holder dies, even by SIGKILL.
* Elasticsearch: a document created with ``op_type=create`` (atomic, first one
  wins) in ``<alias>.lock``. A killed holder cannot delete it, so it carries the
  holder's host and pid and a heartbeat: a lock whose pid is dead on this host,
  or, from another host, whose heartbeat is older than ``stale_s``, is taken over with a
  compare-and-swap on its sequence number (two takers: one wins).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, ConflictError, Elasticsearch, NotFoundError

from indexer.base import IndexBusy
from indexer.es_schema import es_errors

LOCK_ID = "writer"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking ``flock`` on ``path`` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise IndexBusy(
                f"another `eyepic index` ({holder}) is writing {path.with_suffix('')}; "
                "wait for it to finish, then run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class EsWriterLock:
    """The Elasticsearch writer lock of one alias (see the module docstring)."""

    def __init__(self, client: Elasticsearch, alias: str, stale_s: float = 60.0):
        self.client = client
        self.index = f"{alias}.lock"
        self.alias = alias
        self.stale_s = stale_s
        self._held: tuple[int, int] | None = None  # (seq_no, primary_term) of our document
        self._stop = threading.Event()
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        beat = threading.Thread(target=self._heartbeat, name="es-writer-lock", daemon=True)
        beat.start()
        try:
            yield
        finally:
            self._stop.set()
            beat.join()
            self.release()

    def acquire(self) -> None:
        with es_errors(f"take the writer lock {self.index}"):
            try:
                self._write(create=True)
                return
            except ConflictError:
                pass
            try:
                found = self.client.get(index=self.index, id=LOCK_ID)
            except NotFoundError:  # released between our create and our read: try once more
                self._try_create_once_more()
                return
            holder = found["_source"]
            if not self._stale(holder):
                raise IndexBusy(
                    f"another `eyepic index` (pid {holder['pid']} on {holder['host']}, since "
                    f"{holder['since']}) is writing {self.alias}; wait for it to finish, then run again"
                )
            try:  # take a dead holder's lock over, unless someone else just did
                self._write(if_seq=(found["_seq_no"], found["_primary_term"]))
            except ConflictError:
                raise IndexBusy(f"another `eyepic index` just took the writer lock of {self.alias}") from None

    def release(self) -> None:
        with self._guard:
            if self._held is None:
                return
            seq, term = self._held
            self._held = None
            # Taken over as stale (a conflict), or the node is down: a lock left behind by a
            # dead pid is taken over by the next run, so the job's own error stays the one reported.
            with contextlib.suppress(TransportError, ApiError):
                self.client.delete(index=self.index, id=LOCK_ID, if_seq_no=seq, if_primary_term=term,
                                   refresh=True)

    def _try_create_once_more(self) -> None:
        try:
            self._write(create=True)
        except ConflictError:
            raise IndexBusy(f"another `eyepic index` just took the writer lock of {self.alias}") from None

    def _write(self, create: bool = False, if_seq: tuple[int, int] | None = None) -> None:
        now = time.time()
        body: dict[str, Any] = {
            "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": now,
            "since": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
        }
        extra: dict[str, Any] = {"op_type": "create"} if create else {}
        if if_seq is not None:
            extra.update(if_seq_no=if_seq[0], if_primary_term=if_seq[1])
        res = self.client.index(index=self.index, id=LOCK_ID, document=body, refresh=True, **extra)
        self._held = (res["_seq_no"], res["_primary_term"])

    def _stale(self, holder: dict[str, Any]) -> bool:
        """On this host the pid decides (a paused holder still holds); elsewhere the heartbeat."""
        if holder.get("host") == socket.gethostname():
            return not _pid_alive(int(holder.get("pid", 0)))
        return time.time() - float(holder.get("heartbeat", 0)) > self.stale_s

    def _heartbeat(self) -> None:
        """Renew the heartbeat so a long job's lock never looks stale."""
        while not self._stop.wait(self.stale_s / 4):
            with self._guard:
                if self._held is None:
                    return
                seq, term = self._held
                body = {"heartbeat": time.time()}
                with contextlib.suppress(TransportError, ApiError):  # retried at the next beat
                    res = self.client.update(index=self.index, id=LOCK_ID, doc=body,
                                             if_seq_no=seq, if_primary_term=term)
                    self._held = (res["_seq_no"], res["_primary_term"])


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
