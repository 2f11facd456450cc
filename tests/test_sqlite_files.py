"""Several processes opening one new SQLite file at once (gunicorn's workers on a fresh var/).

Before ``eyepic.sqlite_files`` serialised the opening, about 1 in 13 such starts
had a worker fail with "database is locked" (the WAL switch is not covered by
SQLite's busy timeout), and gunicorn stops when a worker fails to boot.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from eyepic.schema import Filters, Item
from indexer.embedded import EmbeddedIndex
from taste.event_sqlite import SQLiteEventStore
from taste.events import Event

PROCESSES = 6
TRIALS = 15


def _open_events(path: str, barrier, results) -> None:
    barrier.wait()
    store = SQLiteEventStore(Path(path))
    store.add(Event("u1", "like", "i1", 1_700_000_000.0, f"e-{mp.current_process().pid}"))
    store.close()
    results.put("ok")


def _open_index(path: str, barrier, results) -> None:
    barrier.wait()
    index = EmbeddedIndex(Path(path))
    index.count(Filters())  # the first call opens the file
    index.close()
    results.put("ok")


@pytest.mark.parametrize("opener", [_open_events, _open_index], ids=["events", "embedded-index"])
def test_processes_opening_one_new_file_at_once_all_succeed(opener, tmp_path):
    ctx = mp.get_context("fork")
    for trial in range(TRIALS):
        path = tmp_path / f"t{trial}" / "new.sqlite"
        barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [ctx.Process(target=opener, args=(str(path), barrier, results)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * PROCESSES, f"trial {trial}: a process failed to open {path}"
        assert results.qsize() == PROCESSES
    if opener is _open_events:
        assert len(SQLiteEventStore(path).events("u1")) == PROCESSES


def test_an_index_that_cannot_make_its_folder_is_index_unavailable(tmp_path):
    from indexer.base import IndexUnavailable

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    index = EmbeddedIndex(blocker / "index.sqlite")
    with pytest.raises(IndexUnavailable, match="open"):
        index.upsert([Item(id="a", embedding=np.ones(4, np.float32), group="top", type="t-shirt", color="red")])
