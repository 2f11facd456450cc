"""How the whole-photo confidence rule was chosen (serving.analyzer.DEFAULT_PRODUCT_WHOLE_CONFIDENCE).

    .venv/bin/python docs/experiments/whole_photo_rule.py [--products 700]

Train photos only: all CCP train photos (street) and a fixed draw of
clothing-small/-extra train photos (products), each answered by the Analyzer
with the installed models and the rule off, and classified whole. For each
threshold t and garment count k, the share of street photos a rule "k or
fewer garments and the whole photo's group probability >= t: one garment"
would merge (it must stay near 0), and the share of product photos answered
with one garment under it. Prints a table; nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eyepic.settings import Settings
from serving.analyzer import WHOLE_IMAGE, Analyzer, Region
from training.data.sources import load_samples

BATCH = 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=700)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    analyzer = Analyzer.from_settings(settings).with_options(product_whole_confidence=None)
    samples = load_samples(settings.data_dir, settings.cache_dir)
    street = sorted({str(s.path) for s in samples if s.source == "ccp" and s.split == "train"})
    products = sorted({str(s.path) for s in samples if s.source != "ccp" and s.split == "train"})
    rng = np.random.default_rng(0)
    products = [products[i] for i in sorted(rng.choice(len(products), min(args.products, len(products)),
                                                       replace=False))]
    found = {}
    for name, paths in (("street", street), ("products", products)):
        counts, confidence = [], []
        for start in tqdm(range(0, len(paths), BATCH), desc=name, unit="batch"):
            photos = [Path(p).read_bytes() for p in paths[start:start + BATCH]]
            counts += [len(a.garments) for a in analyzer.analyze_batch(photos)]
            # the served group probability of the whole photo, as the rule reads it
            confidence += [g.scores["group"] for g in analyzer.describe(photos, None,
                                                                       [Region(WHOLE_IMAGE)] * len(photos))]
        found[name] = (np.asarray(counts), np.asarray(confidence))
        counts = found[name][0]
        print(f"{name}: {len(paths)} photos, answered with one garment {np.mean(counts == 1):.4f}")
    print("| threshold | at most k garments | street photos merged | product photos one garment |")
    print("|---|---|---|---|")
    (sc, sp), (pc, pp) = found["street"], found["products"]
    for t in (0.9, 0.95, 0.98, 0.99, 0.995):
        for k in (2, 3):
            merged = np.mean((sc > 1) & (sc <= k) & (sp >= t))
            one = np.mean((pc == 1) | ((pc > 1) & (pc <= k) & (pp >= t)))
            print(f"| {t} | {k} | {merged:.4f} | {one:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
