"""The indexing job (``eyepic index``) under faults, as real child processes.

* Elasticsearch: the job killed (SIGKILL) mid-run, then the node stopped
  mid-bulk: each rerun converges on exactly the catalog (count and ids, no
  duplicates), and the alias never points at a half-built index, checked
  while the jobs run. The node is the fault-test one (port 9250), never the
  shared one.
* Embedded: the file size limit hit mid-run (RLIMIT_FSIZE, a disk that fills
  up for this process) and the file locked by another process: one line
  and exit 2, and the index still opens and answers with what it held.
* Both backends: a second job started while one runs is refused with a
  clear message, and the first one's result is exactly the catalog.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eyepic.schema import Filters

REPO = Path(__file__).resolve().parents[1]
COPIES = 15  # 40 photos x 15 = 600 items: a job that runs long enough to be hit mid-run
RUN_TIMEOUT_S = 300


def _catalog(catalog_manifest: Path, out: Path, copies: int = COPIES, prefix: str = "c") -> list[str]:
    """The 40-photo catalog repeated under new ids; returns the ids."""
    lines, ids = [], []
    for copy in range(copies):
        for line in catalog_manifest.read_text().splitlines():
            entry = json.loads(line)
            entry["id"] = f"{prefix}{copy}-{entry['id']}"
            ids.append(entry["id"])
            lines.append(json.dumps(entry))
    out.write_text("\n".join(lines) + "\n")
    return ids


class Job:
    """One ``python -m app.cli index CATALOG`` child process, its output kept in files."""

    def __init__(self, catalog: Path, env: dict[str, str], logs: Path, name: str,
                 preexec: Callable[[], None] | None = None):
        logs.mkdir(parents=True, exist_ok=True)
        self.out, self.err = logs / f"{name}.out", logs / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(  # noqa: S603 # our own CLI, a fixed argv
                [sys.executable, "-m", "app.cli", "index", str(catalog)], cwd=REPO,
                env=env, stdout=out, stderr=err, preexec_fn=preexec)  # noqa: PLW1509

    def wait(self) -> int:
        return self.process.wait(timeout=RUN_TIMEOUT_S)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP for the block, SIGCONT after: a job caught mid-run, its lock held."""
        assert self.running, self.err.read_text()
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def error_line(self) -> str:
        """The CLI's one-line error; no traceback anywhere."""
        text = self.err.read_text()
        assert "Traceback" not in text, text
        lines = [ln for ln in text.splitlines() if ln.startswith("eyepic: ")]
        assert len(lines) == 1, text
        return lines[0]


def _env(tiny_model_dir: Path, data_dir: Path, var: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EYEPIC_")}
    env.update(EYEPIC_MODEL_DIR=str(tiny_model_dir), EYEPIC_DATA_DIR=str(data_dir), EYEPIC_VAR_DIR=str(var),
               EYEPIC_BATCH_SIZE="2", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1", **extra)
    return env


def _until(condition: Callable[[], bool], what: str, timeout: float = RUN_TIMEOUT_S,
           check: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        check()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    check()


# -- Elasticsearch -----------------------------------------------------------------------------


class EsWatch:
    """Reads the node directly, and checks on every look that the alias, when it exists,
    points at one complete index (the whole catalog), never a half-built one."""

    def __init__(self, url: str, alias: str, expected: int):
        from elasticsearch import Elasticsearch

        self.es = Elasticsearch(url, request_timeout=10)
        self.alias, self.expected = alias, expected
        self.looks = 0

    def built(self) -> int:
        """Documents in this alias's versioned indices (refreshed ones; the job refreshes per batch)."""
        from elasticsearch import ApiError

        try:
            return int(self.es.count(index=f"{self.alias}-*", allow_no_indices=True,
                                     ignore_unavailable=True)["count"])
        except ApiError as exc:
            if exc.meta.status == 503:  # an index just created, its shard still starting
                return 0
            raise

    def check_alias(self) -> None:
        self.looks += 1
        if self.es.options(ignore_status=404).indices.exists_alias(name=self.alias):
            targets = list(self.es.indices.get_alias(name=self.alias))
            assert len(targets) == 1, targets
            assert self.es.count(index=self.alias)["count"] == self.expected, "alias on a half-built index"

    def ids(self) -> list[str]:
        from elasticsearch import helpers

        return [h["_id"] for h in helpers.scan(self.es, index=self.alias, _source=False, size=1000)]

    def lock_held(self) -> bool:
        # 503: the lock index exists but its shard is still starting
        return bool(self.es.options(ignore_status=(404, 503)).exists(index=f"{self.alias}.lock", id="writer"))


@pytest.fixture
def es_job(fault_es, tiny_model_dir, data_dir, catalog_manifest, tmp_path):
    alias = f"eyepic-faults-{uuid.uuid4().hex[:8]}"
    ids = _catalog(catalog_manifest, tmp_path / "catalog.jsonl")
    env = _env(tiny_model_dir, data_dir, tmp_path / "var", EYEPIC_INDEX="elasticsearch",
               EYEPIC_ES_URL=fault_es.url, EYEPIC_INDEX_NAME=alias)
    watch = EsWatch(fault_es.url, alias, len(ids))
    yield (lambda name: Job(tmp_path / "catalog.jsonl", env, tmp_path / "logs", name)), watch, ids
    if fault_es.answers():
        watch.es.options(ignore_status=404).indices.delete(index=f"{alias}*", expand_wildcards="all")
    watch.es.close()


@pytest.mark.slow
@pytest.mark.elasticsearch
def test_es_job_killed_then_node_stopped_mid_bulk_reruns_converge(es_job, fault_es):
    job, watch, ids = es_job

    first = job("killed")
    _until(lambda: watch.built() >= 40, "the first job's documents", check=watch.check_alias)
    first.kill()
    assert 40 <= watch.built() < len(ids)
    assert not watch.es.indices.exists_alias(name=watch.alias)  # readers still see no half-built index
    assert watch.lock_held()  # the killed job's lock stays behind...

    second = job("node-stopped")  # ...and is taken over: its pid is dead
    resumed_from = watch.built()
    _until(lambda: watch.built() >= resumed_from + 40 or not second.running, "the second job's documents",
           check=watch.check_alias)
    assert second.running, second.err.read_text()
    fault_es.stop()
    assert second.wait() == 2
    line = second.error_line()
    assert "Elasticsearch" in line, line

    fault_es.start()
    assert not watch.es.indices.exists_alias(name=watch.alias)
    third = job("rerun")
    _until(lambda: not third.running, "the rerun", check=watch.check_alias)
    assert third.wait() == 0, third.err.read_text()
    assert f"index holds {len(ids)}" in third.out.read_text()
    found = watch.ids()
    assert len(found) == len(set(found)) == len(ids)  # no duplicates, nothing lost
    assert set(found) == set(ids)
    assert watch.es.count(index=watch.alias)["count"] == len(ids)
    versions = list(watch.es.indices.get(index=f"{watch.alias}-*"))
    assert versions == list(watch.es.indices.get_alias(name=watch.alias))  # the crashed builds' leftovers dropped
    assert not watch.lock_held()
    assert watch.looks > 10


@pytest.mark.slow
@pytest.mark.elasticsearch
def test_es_second_job_at_the_same_time_is_refused(es_job):
    job, watch, ids = es_job
    first = job("first")
    _until(lambda: watch.lock_held() and watch.built() > 0, "the first job to start writing")
    with first.paused():  # mid-run, lock held, for as long as the second job takes to start
        second = job("second")
        assert second.wait() == 2, second.out.read_text()
        assert "another `eyepic index`" in second.error_line()
    assert first.wait() == 0, first.err.read_text()
    found = watch.ids()
    assert len(found) == len(ids) and set(found) == set(ids)
    assert not watch.lock_held()


# -- embedded ----------------------------------------------------------------------------------


@pytest.fixture
def embedded_job(catalog_index_settings, tiny_model_dir, data_dir, catalog_manifest, tmp_path):
    """A copy of the 40-item embedded index, and jobs that add 600 more items to it."""
    var = tmp_path / "var"
    (var / "index").mkdir(parents=True)
    path = var / "index" / "eyepic-items.sqlite"
    shutil.copy(catalog_index_settings.index_dir / "eyepic-items.sqlite", path)
    ids = _catalog(catalog_manifest, tmp_path / "catalog.jsonl")
    env = _env(tiny_model_dir, data_dir, var, EYEPIC_INDEX="embedded")

    def make(name: str, preexec: Callable[[], None] | None = None) -> Job:
        return Job(tmp_path / "catalog.jsonl", env, tmp_path / "logs", name, preexec)
    return make, path, ids


def _count(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def _answers(path: Path, original: set[str], at_most: int) -> set[str]:
    """Open the index as the app does: intact, holding the original items, and searching."""
    from indexer.embedded import EmbeddedIndex

    index = EmbeddedIndex(path)
    try:
        assert index._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        found = index.ids()
        assert original <= found and len(found) <= at_most
        item = index.get(sorted(original or found)[0])
        hits = index.search(item.embedding, k=5, filters=Filters())
        assert hits and hits[0].score > 0.99  # itself, or a copy of its photo
        return found
    finally:
        index.close()


@pytest.mark.slow
def test_embedded_disk_full_mid_run_keeps_the_index(embedded_job):
    make, path, ids = embedded_job
    original = _answers(path, set(), 40)
    assert len(original) == 40
    limit = path.stat().st_size + 96 * 1024  # room for a few batches in the WAL, not for 600 items

    def small_disk() -> None:  # in the child: files may not grow past `limit` (EFBIG, as a full disk)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = make("disk-full", small_disk)
    assert full.wait() == 2
    line = full.error_line()
    assert "embedded index" in line and "disk" in line, line
    kept = _answers(path, original, 40 + len(ids))
    assert len(kept) > 40  # the batches before the failure were committed

    rerun = make("rerun")
    assert rerun.wait() == 0, rerun.err.read_text()
    assert _answers(path, original, 40 + len(ids)) == original | set(ids)


def _hold_lock(path: Path, exclusive: bool) -> subprocess.Popen:
    """Another program holding SQLite's lock on ``path`` until its stdin closes: the write lock
    (readers go on) or, in EXCLUSIVE locking mode, the whole file (readers wait too)."""
    mode = "db.execute('PRAGMA locking_mode=EXCLUSIVE'); " if exclusive else ""
    holder = subprocess.Popen(  # noqa: S603 # a fixed argv
        [sys.executable, "-c", "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
         f"{mode}db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(timeout=30)


def _search(web, photo: bytes):
    import io

    return web.post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.jpg"), "k": "3"})


@pytest.mark.slow
def test_embedded_file_locked_by_another_process(embedded_job, catalog_index_settings, data_dir):
    import dataclasses

    from web import create_app

    make, path, ids = embedded_job
    settings = dataclasses.replace(catalog_index_settings, var_dir=path.parents[1])
    photo = sorted((data_dir / "clothing-small" / "validation" / "shirt").glob("*.jpg"))[0].read_bytes()

    # The whole file locked before the web tier starts: it starts anyway, is not ready, answers 503.
    holder = _hold_lock(path, exclusive=True)
    try:
        web = create_app(settings).test_client()
        ready = web.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert "locked" in ready.get_json()["checks"]["index"]
        down = _search(web, photo)
        assert down.status_code == 503 and down.headers["Retry-After"]
        assert down.mimetype == "application/problem+json"
        assert down.get_json()["type"].endswith("index-unavailable")
        job = make("locked")
        assert job.wait() == 2
        line = job.error_line()
        assert "embedded index" in line and "locked" in line, line
    finally:
        _release(holder)
    assert web.get("/readyz").status_code == 200  # opened at last, no restart
    assert _search(web, photo).status_code == 200

    # Only writes locked while the web tier runs: the job is refused, searches go on.
    holder = _hold_lock(path, exclusive=False)
    try:
        job = make("write-locked")
        assert job.wait() == 2
        assert "locked" in job.error_line()
        assert _search(web, photo).status_code == 200
        assert web.get("/readyz").status_code == 200
    finally:
        _release(holder)
    assert _count(path) == 40


@pytest.mark.slow
def test_embedded_second_job_at_the_same_time_is_refused(embedded_job):
    make, path, ids = embedded_job
    first = make("first")
    _until(lambda: _count(path) > 40 or not first.running, "the first job to start writing")
    with first.paused():  # mid-run, lock held, for as long as the second job takes to start
        second = make("second")
        assert second.wait() == 2, second.out.read_text()
        assert "another `eyepic index`" in second.error_line()
    assert first.wait() == 0, first.err.read_text()
    assert _count(path) == 40 + len(ids)


def test_writer_lock_refuses_a_second_holder(tmp_path):
    """The lock itself, without models: a second holder in another process is refused, and the
    kernel frees the lock of a holder that dies."""
    from indexer.embedded import EmbeddedIndex

    path = tmp_path / "x.sqlite"
    code = ("import sys, time; from indexer.embedded import EmbeddedIndex; "
            "w = EmbeddedIndex(sys.argv[1]).writer(); w.__enter__(); print('held', flush=True); time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=REPO,  # noqa: S603
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        index = EmbeddedIndex(path)
        from indexer.base import IndexBusy

        with pytest.raises(IndexBusy, match=f"pid {other.pid}"):
            with index.writer():
                pass
    finally:
        os.kill(other.pid, signal.SIGKILL)
        other.wait()
    with index.writer() as target:
        assert target is index
    index.close()


@pytest.mark.slow  # starts the fault-test node when no other test has (~1 min)
@pytest.mark.elasticsearch
def test_es_lock_of_another_host_is_kept_until_its_heartbeat_is_stale(fault_es):
    """Another host's holder: its pid says nothing here, so only an old heartbeat frees the lock."""
    from elasticsearch import Elasticsearch

    from indexer.base import IndexBusy
    from indexer.writer_lock import LOCK_ID, EsWriterLock

    es = Elasticsearch(fault_es.url, request_timeout=10)
    alias = f"eyepic-lock-{uuid.uuid4().hex[:8]}"
    try:
        holder = {"host": "indexer-7.example", "pid": 1, "heartbeat": time.time(), "since": "earlier"}
        es.index(index=f"{alias}.lock", id=LOCK_ID, document=holder, refresh=True)
        with pytest.raises(IndexBusy, match="pid 1 on indexer-7.example"):
            EsWriterLock(es, alias, stale_s=60).acquire()
        es.index(index=f"{alias}.lock", id=LOCK_ID, document=dict(holder, heartbeat=time.time() - 61),
                 refresh=True)
        lock = EsWriterLock(es, alias, stale_s=60)
        with lock.held():
            assert es.get(index=f"{alias}.lock", id=LOCK_ID)["_source"]["pid"] == os.getpid()
            with pytest.raises(IndexBusy):  # ours is fresh and our pid alive
                EsWriterLock(es, alias, stale_s=60).acquire()
        assert not es.options(ignore_status=404).exists(index=f"{alias}.lock", id=LOCK_ID)
        with EsWriterLock(es, alias, stale_s=0.8).held():  # a long job's heartbeat keeps its lock fresh
            first = es.get(index=f"{alias}.lock", id=LOCK_ID)["_source"]["heartbeat"]
            time.sleep(1.0)
            assert es.get(index=f"{alias}.lock", id=LOCK_ID)["_source"]["heartbeat"] > first
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{alias}.lock")
        es.close()
