"""``eyepic crawl --profile PROFILE.yaml --out DIR``: a shop's catalog, politely, resumably.

Runs the crawler stage and writes what the other stages read: ``DIR/catalog.jsonl``
(``eyepic index DIR/catalog.jsonl``), ``DIR/classes/<type>/`` when the profile names
categories (training's folder-per-class reader), and ``DIR/crawl-report.json``.
Run it again on the same DIR to resume a killed crawl or, after a finished one,
to re-crawl: changed products are updated and vanished ones marked for the indexer.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path
from typing import Any

from crawler.profile import ProfileError, load_profile
from eyepic.settings import Settings

KNOWN_ERRORS = (ProfileError,)


def add_crawl_parser(sub: Any) -> None:
    crawl = sub.add_parser("crawl", help="crawl a shop's catalog with headless Chromium (resumable)")
    crawl.add_argument("--profile", required=True, help="site profile YAML (see crawler/profiles/)")
    crawl.add_argument("--out", required=True, help="output folder; holds the crawl state, so reuse it to resume")
    crawl.add_argument("--delay", type=float, help="seconds between requests to a host (default: the profile's; "
                       "robots.txt's Crawl-delay still wins when longer)")
    crawl.add_argument("--quiet", action="store_true", help="no progress lines")
    crawl.set_defaults(func=crawl_command)


def crawl_command(settings: Settings, args: argparse.Namespace) -> int:
    from crawler.crawl import Crawler
    from crawler.output import catalog_rows, write_catalog, write_classes, write_report

    profile = load_profile(Path(args.profile))
    out = Path(args.out)
    crawler = Crawler(profile, out, settings.crawl_agent, delay_s=args.delay,
                      progress=None if args.quiet else sys.stderr)
    try:
        result = crawler.run()
        rows = catalog_rows(crawler.state, profile.shop)
    finally:
        crawler.state.close()
    catalog = write_catalog(out, rows)
    classes = write_classes(out, rows)
    c = result.counters
    minutes = max(result.elapsed_s, 1e-9) / 60
    report = {
        "shop": profile.shop, "run": result.run, "resumed": result.resumed, "user_agent": settings.crawl_agent,
        "delay_s": profile.delay_s if args.delay is None else args.delay, "elapsed_s": round(result.elapsed_s, 2),
        "pages": result.pages.get("done", 0), "pages_skipped": result.pages.get("skipped", 0),
        "cards": c.get("cards", 0), "products_kept": c.get("products", 0), "images_downloaded": c.get("images", 0),
        "catalog_active": sum(r["status"] == "active" for r in rows),
        "catalog_vanished": sum(r["status"] == "vanished" for r in rows), "vanished_this_run": result.vanished,
        "updated": c.get("updated", 0), "unchanged": c.get("unchanged", 0),
        "duplicates": {"url": c.get("duplicate-url", 0), "image": c.get("duplicate-image", 0)},
        "skipped": {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("skipped:")},
        "retries": result.retries, "classes": classes,
        "pages_per_min": round(result.pages.get("done", 0) / minutes, 1),
        "products_per_min": round(c.get("products", 0) / minutes, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "catalog": str(catalog),
    }
    write_report(out, report)
    print(json.dumps({k: report[k] for k in ("pages", "products_kept", "catalog_active", "catalog_vanished",
                                             "duplicates", "skipped", "elapsed_s")}))
    print(f"catalog: {catalog} (eyepic index {catalog})")
    return 0
