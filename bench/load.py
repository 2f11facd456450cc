"""Search under concurrent load through gunicorn: in-process models vs the model server.

``POST /api/v1/search`` over real HTTP on 127.0.0.1 against ``eyepic serve
--workers N`` (gunicorn, as production and the demo serve), at 1, 4 and 16
concurrent clients (each a thread with its own keep-alive session, one
request after another, for ``--seconds`` each), twice: models in each
worker, then models behind ``python -m serving.devserver`` (the TF Serving
stand-in, gRPC). The index is a fresh embedded one of ``--catalog``
clothing-small photos, built first through the in-process analyzer.

Prints and writes per mode and concurrency: p50/p95/p99, throughput (answers
per second), errors (any non-200, and 5xx apart), and each gunicorn worker's
memory (RSS and PSS: PSS shares the pages forked workers hold in common) after
the run; JSON to ``var/reports/bench_load.json`` and a plot to
``var/reports/bench_load.png``.

``--soak SECONDS`` runs the bounded soak instead (in-process models,
``--clients`` clients, default 8): 5xx count, p95 of the first minute against
the last (drift), and each worker's RSS growth from the first minute's end to
the last (after warm-up: the models' one-time allocations are not growth);
``var/reports/bench_load_soak.json``.

    .venv/bin/python -m bench.load --seconds 15
    .venv/bin/python -m bench.load --soak 600 --clients 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess  # nosec B404 # our own CLI with a fixed argv, never a shell
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.common import write_report
from eyepic.settings import Settings

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 4, 16)


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and mean, in milliseconds."""
    if not ms:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    ordered = sorted(ms)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 1)

    return {"p50_ms": rank(50), "p95_ms": rank(95), "p99_ms": rank(99),
            "mean_ms": round(sum(ordered) / len(ordered), 1)}


def run_level(url: str, queries: list[bytes], clients: int, seconds: float,
              timeline: list[tuple[float, str, float]] | None = None) -> dict[str, float]:
    """``clients`` threads posting searches back to back for ``seconds``; latencies of 200s only.
    ``timeline`` (when given) gets every answer's (end time, status, ms)."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    guard = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(offset: int) -> None:
        session = requests.Session()
        i = offset
        while time.perf_counter() < stop_at:
            data = queries[i % len(queries)]
            i += clients
            started = time.perf_counter()
            try:
                r = session.post(url, files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "12"},
                                 timeout=60)
                status = str(r.status_code)
            except requests.RequestException as exc:
                status = type(exc).__name__
            took = (time.perf_counter() - started) * 1000
            with guard:
                statuses[status] = statuses.get(status, 0) + 1
                if status == "200":
                    latencies.append(took)
                if timeline is not None:
                    timeline.append((time.perf_counter(), status, took))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    errors = sum(n for s, n in statuses.items() if s != "200")
    return {"clients": clients, "requests": sum(statuses.values()), "ok": statuses.get("200", 0),
            "errors": errors, "errors_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
            "statuses": statuses, "throughput_rps": round(statuses.get("200", 0) / elapsed, 2),
            **percentiles(latencies)}


class Gunicorn:
    """``python -m app.cli serve --workers N`` in a child process, ready when /readyz says 200."""

    def __init__(self, env: dict[str, str], port: int, workers: int, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        env = dict(env, EYEPIC_PORT=str(port), EYEPIC_HOST="127.0.0.1")
        argv = [sys.executable, "-m", "app.cli", "serve", "--workers", str(workers)]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=out)  # nosec B603 # fixed argv

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"eyepic serve exited with {self.process.returncode}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=30).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise RuntimeError("eyepic serve did not become ready")

    def worker_memory(self) -> list[dict[str, float]]:
        """RSS and PSS (MiB) of each gunicorn worker (the serve process's children)."""
        import psutil

        out = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                full = child.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            out.append({"pid": child.pid, "rss_mib": round(full.rss / 2**20, 1),
                        "pss_mib": round(getattr(full, "pss", float("nan")) / 2**20, 1)})
        return sorted(out, key=lambda w: w["pid"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def plot(results: dict[str, list[dict]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4))
    for n, (mode, rows) in enumerate(results.items()):
        xs, color = [r["clients"] for r in rows], f"C{n}"
        for q, style in (("p50_ms", "-o"), ("p95_ms", "--s"), ("p99_ms", ":^")):
            lat.plot(xs, [r[q] for r in rows], style, color=color, label=f"{mode} {q[:3]}")
        thr.plot(xs, [r["throughput_rps"] for r in rows], "-o", color=color, label=mode)
    for ax, title, unit in ((lat, "search latency", "ms"), (thr, "throughput", "answers/s")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(LEVELS), [str(c) for c in LEVELS])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def soak(url: str, queries: list[bytes], server: Gunicorn, clients: int, seconds: float) -> dict:
    """``clients`` clients for ``seconds``; 5xx, p95 drift (first vs last minute), RSS growth."""
    window = min(60.0, seconds / 3)
    timeline: list[tuple[float, str, float]] = []
    memory: dict[str, list[dict[str, float]]] = {}
    started = time.perf_counter()

    loads: dict[str, list[float]] = {}

    def sample_memory() -> None:  # at the first window's end and at the last one's start
        time.sleep(window)
        memory["first"], loads["first_window_end"] = server.worker_memory(), list(os.getloadavg())
        time.sleep(max(0.0, seconds - 2 * window))
        memory["last_start"] = server.worker_memory()

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    row = run_level(url, queries, clients, seconds, timeline)
    memory["end"], loads["end"] = server.worker_memory(), list(os.getloadavg())
    sampler.join(timeout=5)

    def p95(lo: float, hi: float) -> float:
        return percentiles([ms for t, s, ms in timeline if s == "200" and lo <= t - started < hi])["p95_ms"]

    def answers(lo: float, hi: float) -> int:
        return sum(1 for t, s, _ in timeline if s == "200" and lo <= t - started < hi)

    end = max(t for t, _, _ in timeline) - started
    first, last = p95(0.0, window), p95(end - window, end + 1)
    # the machine is shared: the load average (1-min) at each window's end says whether a drift is ours
    by_window = [{"from_s": round(lo), "p95_ms": p95(lo, lo + window), "answers": answers(lo, lo + window)}
                 for lo in [i * window for i in range(int(end // window) + 1)]]
    before = {w["pid"]: w["rss_mib"] for w in memory.get("first", [])}
    growth = {str(w["pid"]): round(100 * (w["rss_mib"] / before[w["pid"]] - 1), 1)
              for w in memory["end"] if w["pid"] in before}
    return {**row, "seconds": seconds, "window_s": window, "p95_first_window_ms": first,
            "p95_last_window_ms": last, "p95_drift_pct": round(100 * (last / first - 1), 1),
            "load_average": loads, "p95_by_window": by_window,
            "memory": memory, "rss_growth_pct_by_worker": growth,
            "rss_growth_pct_max": max(growth.values()) if growth else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="load per concurrency level")
    parser.add_argument("--soak", type=float, default=0.0, help="run the soak for this many seconds instead")
    parser.add_argument("--clients", type=int, default=8, help="soak clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (one per core here)")
    parser.add_argument("--catalog", type=int, default=200, help="catalog photos to index first")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from app.indexing import index_catalog
    from devtools.harness import DevServerProcess, free_port, write_config
    from indexer.catalog import read_catalog
    from indexer.factory import open_index
    from serving.analyzer import Analyzer
    from serving.model_client import InProcessModelClient, latest_version_dir

    base = Settings.from_env()
    version_dir = latest_version_dir(base.model_dir, base.classifier_name)
    work = Path(tempfile.mkdtemp(prefix="eyepic-load-bench-"))
    settings = dataclasses.replace(base, var_dir=work, index="embedded")
    product = sorted((settings.data_dir / "clothing-small" / "train").rglob("*.jpg"))
    catalog = work / "catalog.jsonl"
    step = max(1, len(product) // args.catalog)
    catalog.write_text("".join(json.dumps({"id": f"p{i}", "image": str(p.resolve()), "title": p.parent.name}) + "\n"
                               for i, p in enumerate(product[::step][: args.catalog])))
    street = sorted((settings.data_dir / "ccp" / "photos").glob("*.jpg"))
    shots = sorted((settings.data_dir / "clothing-small" / "validation").rglob("*.jpg"))
    queries = [p.read_bytes() for pair in zip(street[::7], shots[::7]) for p in pair][:64]
    index = open_index(settings)
    index_catalog(read_catalog(catalog), Analyzer.from_settings(settings, InProcessModelClient(settings.model_dir)),
                  index, progress=False)
    items = index.count()
    index.close()
    print(f"export {version_dir}; index of {items} items; {len(queries)} query photos; "
          f"{args.workers} gunicorn workers; {args.seconds:.0f} s per level", flush=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("EYEPIC_")}
    env.update(EYEPIC_VAR_DIR=str(work), EYEPIC_INDEX="embedded", EYEPIC_MODEL_DIR=str(settings.model_dir.resolve()),
               EYEPIC_DATA_DIR=str(settings.data_dir.resolve()), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    results: dict[str, list[dict]] = {}
    served = {name: (settings.model_dir / name).resolve() for name in (settings.classifier_name, settings.detector_name)
              if (settings.model_dir / name).is_dir()}
    # each model at its latest export, under the "stable" label the clients ask for
    versions = {name: int(latest_version_dir(settings.model_dir, name).name) for name in served}
    config = write_config(work / "models.config", served, labels=("stable",), versions=versions)
    if args.soak:
        return run_soak(args, env, work, base, version_dir, items, queries)
    memory: dict[str, list[dict[str, float]]] = {}
    for mode in ("in_process", "model_server"):
        devserver = None
        mode_env = dict(env)
        if mode == "model_server":
            devserver = DevServerProcess(config, free_port(), log_path=work / "devserver.log").start()
            mode_env["EYEPIC_MODEL_SERVER"] = devserver.target
        server = Gunicorn(mode_env, free_port(), args.workers, work / f"serve-{mode}.log")
        try:
            server.wait_ready()
            url = f"{server.url}/api/v1/search"
            run_level(url, queries, 2, min(5.0, args.seconds))  # warm every worker's models
            results[mode] = []
            for clients in LEVELS:
                row = run_level(url, queries, clients, args.seconds)
                results[mode].append(row)
                print(f"{mode:13} {clients:2} clients: p50 {row['p50_ms']} p95 {row['p95_ms']} "
                      f"p99 {row['p99_ms']} ms, {row['throughput_rps']} answers/s, "
                      f"{row['errors']} errors ({row['errors_5xx']} 5xx)", flush=True)
            memory[mode] = server.worker_memory()
            print(f"{mode:13} worker memory: " + ", ".join(
                f"RSS {w['rss_mib']} MiB PSS {w['pss_mib']} MiB" for w in memory[mode]), flush=True)
        finally:
            server.stop()
            if devserver is not None:
                devserver.stop()

    by = {mode: {r["clients"]: r for r in rows} for mode, rows in results.items()}
    ratios = {
        "model_server_over_in_process_p50_1_client": round(
            by["model_server"][1]["p50_ms"] / by["in_process"][1]["p50_ms"], 2),
        "in_process_throughput_4_over_1": round(
            by["in_process"][4]["throughput_rps"] / by["in_process"][1]["throughput_rps"], 2),
        "model_server_throughput_4_over_1": round(
            by["model_server"][4]["throughput_rps"] / by["model_server"][1]["throughput_rps"], 2),
    }
    print(json.dumps(ratios))
    out = args.out or base.reports_dir / "bench_load.json"
    report = {"export": str(version_dir), "models": sorted(served), "versions": versions, "items": items,
              "workers": args.workers,
              "seconds_per_level": args.seconds,
              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": results, "ratios": ratios,
              "worker_memory_mib": memory,
              "note": "client threads share the machine's cores with gunicorn (and the dev server); "
                      "the dev server is a Python stand-in for TF Serving (no batching)"}
    print(f"wrote {write_report(report, out)} and {plot(results, out.with_suffix('.png'))}")
    return 0


def run_soak(args: argparse.Namespace, env: dict[str, str], work: Path, base: Settings, version_dir: Path,
             items: int, queries: list[bytes]) -> int:
    """The bounded soak on in-process models; its own report."""
    server = Gunicorn(env, free_port_(), args.workers, work / "serve-soak.log")
    try:
        server.wait_ready()
        url = f"{server.url}/api/v1/search"
        run_level(url, queries, 2, 5.0)  # warm every worker's models
        print(f"soak: {args.clients} clients for {args.soak:.0f} s", flush=True)
        row = soak(url, queries, server, args.clients, args.soak)
    finally:
        server.stop()
    print(f"soak: {row['requests']} requests, {row['errors_5xx']} 5xx, {row['errors']} errors; p95 first "
          f"{row['p95_first_window_ms']} ms, last {row['p95_last_window_ms']} ms (drift {row['p95_drift_pct']} %); "
          f"RSS growth by worker {row['rss_growth_pct_by_worker']} %")
    out = args.out or base.reports_dir / "bench_load_soak.json"
    report = {"export": str(version_dir), "items": items, "workers": args.workers, "clients": args.clients,
              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "soak": row,
              "targets": {"errors_5xx": 0, "p95_drift_pct_max": 20, "rss_growth_pct_max": 10}}
    print(f"wrote {write_report(report, out)}")
    return 0


def free_port_() -> int:
    from devtools.harness import free_port

    return free_port()


if __name__ == "__main__":
    sys.exit(main())
