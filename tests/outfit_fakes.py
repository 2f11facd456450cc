"""A tiny compatibility model for API tests (the FakeModels' 16-d embeddings), built in code.

Random projections (fixed seed) and one known preference in its prior, so
tests can check the reason it gives: black tops are often worn with blue
bottoms.
"""

from __future__ import annotations

import numpy as np

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from outfits.model import CompatibilityModel, PairWeights, model_pairs

from fakes import DIM


def tiny_compatibility(dim: int = DIM, rank: int = 4, seed: int = 0) -> CompatibilityModel:
    rng = np.random.default_rng(seed)
    n = dim + len(taxonomy.TYPE_NAMES) + len(COLOR_NAMES)
    pairs = {}
    for a, b in model_pairs():
        color_pmi = np.zeros((len(COLOR_NAMES), len(COLOR_NAMES)), np.float32)
        type_pmi = np.zeros((len(taxonomy.TYPE_NAMES), len(taxonomy.TYPE_NAMES)), np.float32)
        if (a, b) == ("top", "bottom"):
            color_pmi[COLOR_NAMES.index("black"), COLOR_NAMES.index("blue")] = 1.0
        pairs[(a, b)] = PairWeights(rng.normal(size=(n, rank)).astype(np.float32),
                                    rng.normal(size=(n, rank)).astype(np.float32), color_pmi, type_pmi, outfits=10)
    return CompatibilityModel(embedding_dim=dim, rank=rank, attribute_scale=0.5, w_bilinear=1.0, w_prior=1.0,
                              pairs=pairs)
