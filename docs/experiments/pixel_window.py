"""How well pixels alone name a garment's mask color, by the share of its box counted.

Model-free, so it may be run on training crops: 600 CCP train crops (a fixed
draw, calibration photos excluded) and the 15 % calibration crops.
    .venv/bin/python docs/experiments/pixel_window.py
"""

from __future__ import annotations

import numpy as np

from eyepic.colors import COLOR_NAMES
from eyepic.settings import Settings
from training.data.samples import FULL, calibration_part
from training.data.sources import load_samples
from training.predictions import sample_color_shares

WINDOWS = (1.0, 0.9, 0.8, 0.75, 0.7, 0.6, 0.5)


def main() -> None:
    settings = Settings.from_env()
    samples = load_samples(settings.data_dir, settings.cache_dir)
    rest, held = calibration_part(samples, 0.15)
    train = [s for s in rest if s.split == "train" and s.color and s.box != FULL]
    train = [train[i] for i in np.random.default_rng(0).choice(len(train), 600, replace=False)]
    pools = {"train (600)": train, f"calibration ({len(held)})": [s for s in held if s.color]}
    print("| window | " + " | ".join(pools) + " |\n|---|" + "---|" * len(pools))
    for window in WINDOWS:
        cells = []
        for pool in pools.values():
            truth = np.array([COLOR_NAMES.index(s.color) for s in pool])
            named = np.array([sample_color_shares(s, window).argmax() for s in pool])
            cells.append(f"{(named == truth).mean():.3f}")
        print(f"| {window} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
