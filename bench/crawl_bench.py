"""Crawler benchmark on the fixture shop (devtools/shop.py, real photos, 127.0.0.1).

Measures pages/min and products/min at the profile's default rate limit
(1 s per host) and with the limit lifted (0 s), the time a killed crawl takes
to resume, duplicates caught by URL and by image hash, and the memory of a
1,000-product crawl (the crawl process's peak RSS, and Chromium's peak PSS
summed over its processes, sampled every 0.2 s). Writes var/reports/crawl_bench.json.

    .venv/bin/python -m bench.crawl_bench                 # ~4 min on 2 cores
    .venv/bin/python -m bench.crawl_bench --skip-default  # without the 1 s/host run (~1 min of it)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess  # nosec B404 # fixed argv lists below, never a shell
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import write_report
from crawler.state import pages_done
from devtools.shop import FixtureShop, serve

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "crawler" / "profiles" / "fixture-shop.yaml"
LARGE_PROFILE = """shop: fixture-large
allow_private: true
delay_s: 0
listings:
  - url: {base}/c/all
    pagination: {{param: page, max_pages: 100}}
selectors: {{card: .product, title: .title, price: .price, image: img, link: a.link, category: "@data-category"}}
"""


def _tree_pss_mb(root: int) -> float:
    """Proportional set size of ``root``'s descendants (chromedriver, Chromium), from /proc:
    shared pages are split between the processes sharing them, so the sum is not inflated."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    total, frontier = 0, {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier}
        for pid in children:
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
        frontier = children
    return total / 1024


def run_crawl(profile: Path, out: Path, kill_after_pages: int = 0) -> dict:
    """``eyepic crawl`` as a child process; returns its report plus wall time and Chromium's peak RSS."""
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "app.cli", "crawl", "--profile", str(profile), "--out", str(out),
                              "--quiet"], cwd=REPO, start_new_session=True,
                             stdout=subprocess.DEVNULL)  # nosec B603 # our own CLI, fixed argv
    peak = [0.0]

    def sample() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], _tree_pss_mb(child.pid))
            if kill_after_pages and pages_done(out) >= kill_after_pages:
                os.killpg(child.pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    child.wait()
    sampler.join()
    if kill_after_pages:
        return {"killed_after_pages": pages_done(out), "wall_s": round(time.monotonic() - started, 1)}
    report = json.loads((out / "crawl-report.json").read_text())
    return {**report, "wall_s": round(time.monotonic() - started, 1), "chromium_peak_pss_mb": round(peak[0], 1)}



def fixture_run(photos: dict, tmp: Path, name: str, delay: float, kill_after: int = 0) -> dict:
    shop = FixtureShop(photos)
    base, stop = serve(shop)
    try:
        profile = tmp / f"{name}.yaml"
        profile.write_text(EXAMPLE.read_text().replace("http://127.0.0.1:8765", base)
                           .replace("delay_s: 1.0", f"delay_s: {delay}"))
        killed = run_crawl(profile, tmp / name, kill_after) if kill_after else None
        report = run_crawl(profile, tmp / name)
        return {**report, "killed": killed} if killed else report
    finally:
        stop()


def summary(r: dict) -> dict:
    keys = ("delay_s", "elapsed_s", "wall_s", "pages", "products_kept", "pages_per_min", "products_per_min",
            "duplicates", "skipped", "retries", "peak_rss_mb", "chromium_peak_pss_mb", "resumed", "killed")
    return {k: r[k] for k in keys if k in r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "reports" / "crawl_bench.json")
    args = parser.parse_args()
    train = args.data / "clothing-small" / "train"
    photos = {c: sorted((train / c).glob("*.jpg"))[:12] for c in ("dress", "pants", "shirt", "hat")}
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp:
        tmp = Path(tmp)
        if not args.skip_default:
            results["fixture_default_rate"] = summary(fixture_run(photos, tmp, "default", 1.0))
            print(json.dumps(results["fixture_default_rate"]), flush=True)
        results["fixture_no_limit"] = summary(fixture_run(photos, tmp, "nolimit", 0.0))
        print(json.dumps(results["fixture_no_limit"]), flush=True)
        results["fixture_resume"] = summary(fixture_run(photos, tmp, "resume", 0.0, kill_after=3))
        print(json.dumps(results["fixture_resume"]), flush=True)
        every = {c.name: sorted(c.glob("*.jpg"))[: args.large // 10 + 1] for c in sorted(train.iterdir())}
        shop = FixtureShop(every, large=args.large)
        base, stop = serve(shop)
        try:
            profile = tmp / "large.yaml"
            profile.write_text(LARGE_PROFILE.format(base=base))
            results[f"large_{args.large}"] = summary(run_crawl(profile, tmp / "large"))
        finally:
            stop()
        print(json.dumps(results[f"large_{args.large}"]), flush=True)
    print(write_report(results, args.out))


if __name__ == "__main__":
    main()
