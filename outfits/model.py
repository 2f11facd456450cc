"""The compatibility model: how well two garments of different groups go together.

For a pair of groups (e.g. top and bottom) the score of garments ``a`` and
``b`` is

    w_bilinear * (x_a A) . (x_b B)  +  w_prior * (color_pmi[c_a, c_b] + type_pmi[t_a, t_b])

* ``x`` is a garment's features: the classifier's L2-normalised embedding,
  then one-hot type and one-hot color (scaled by ``attribute_scale``), so
  colour harmony is something the projection learns from worn outfits, not
  a rule list. ``A`` and ``B`` (features x rank) are one small learned
  projection per pair of groups (in-batch contrastive training on garments
  worn together in CCP train photos, ``training.train_outfits``).
* ``color_pmi`` and ``type_pmi`` are the smoothed log-odds that two colors
  (types) are worn together in that pair of groups, against chance: the
  co-occurrence prior, factored into colour and type tables because the
  joint type x color table is far too sparse for some 700 outfits. They also
  give each suggestion its reason ("navy tops are often worn with beige
  trousers").

Only the embedding part of ``B`` reaches into the catalog's vector space:
``query_vector`` maps a garment into the partner group's embedding space so
``Index.search`` retrieves candidates; ``score`` then re-ranks them with the
whole model. Stored as one ``.npz`` of arrays plus a JSON header
(``save``/``load``); numpy only, so serving needs no TensorFlow for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from eyepic import compatibility as contract
from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.compatibility import (
    OUTFIT_GROUPS,
    PARTNERS,
    WEIGHTS_FILE,
    ModelFileError,
    model_pairs,
    pair_key,
)

__all__ = ["OUTFIT_GROUPS", "PARTNERS", "WEIGHTS_FILE", "CompatibilityModel", "ModelFileError", "PairWeights",
           "model_pairs", "pair_key"]


@dataclasses.dataclass
class PairWeights:
    """One pair of groups: projections of the first and the second group, and the prior tables."""

    a: np.ndarray  # (features, rank): projects the first group's garments
    b: np.ndarray  # (features, rank): the second group's
    color_pmi: np.ndarray  # (colors, colors): rows the first group's color
    type_pmi: np.ndarray  # (types, types)
    outfits: int = 0  # training outfits that had this pair


@dataclasses.dataclass
class CompatibilityModel:
    embedding_dim: int
    rank: int
    attribute_scale: float
    w_bilinear: float
    w_prior: float
    pairs: dict[tuple[str, str], PairWeights]
    types: tuple[str, ...] = taxonomy.TYPE_NAMES
    colors: tuple[str, ...] = COLOR_NAMES
    info: dict = dataclasses.field(default_factory=dict)  # recipe, data fingerprint, metrics...

    # --- features ---------------------------------------------------------------------------

    def features(self, embeddings: np.ndarray, types: Sequence[str], colors: Sequence[str]) -> np.ndarray:
        """Rows of [embedding, one-hot type, one-hot color] (``eyepic.compatibility.features``)."""
        return contract.features(embeddings, types, colors, self.types, self.colors, self.attribute_scale)

    def has_pair(self, a: str, b: str) -> bool:
        return a in OUTFIT_GROUPS and b in OUTFIT_GROUPS and a != b and pair_key(a, b) in self.pairs

    def _sides(self, a: str, b: str) -> tuple[PairWeights, np.ndarray, np.ndarray, bool]:
        """The pair's weights with ``a``'s projection first (``flipped`` when stored the other way)."""
        key = pair_key(a, b)
        if key not in self.pairs:
            raise KeyError(f"no compatibility weights for {a} and {b}")
        w = self.pairs[key]
        flipped = key[0] != a
        return w, (w.b if flipped else w.a), (w.a if flipped else w.b), flipped

    # --- scoring ------------------------------------------------------------------------------

    def prior(self, a: str, type_a: str, color_a: str, b: str, types_b: Sequence[str],
              colors_b: Sequence[str]) -> np.ndarray:
        """The co-occurrence prior of garment ``a`` (group a) with each of group b's garments."""
        w, _, _, flipped = self._sides(a, b)
        out = np.zeros(len(types_b), np.float32)
        ta = self.types.index(type_a) if type_a in self.types else None
        ca = self.colors.index(color_a) if color_a in self.colors else None
        for i, (tb, cb) in enumerate(zip(types_b, colors_b)):
            if ca is not None and cb in self.colors:
                j = self.colors.index(cb)
                out[i] += w.color_pmi[j, ca] if flipped else w.color_pmi[ca, j]
            if ta is not None and tb in self.types:
                j = self.types.index(tb)
                out[i] += w.type_pmi[j, ta] if flipped else w.type_pmi[ta, j]
        return out

    def bilinear(self, a: str, features_a: np.ndarray, b: str, features_b: np.ndarray) -> np.ndarray:
        """(x_a A) . (x_b B) of one garment (row) against many (rows)."""
        _, pa, pb, _ = self._sides(a, b)
        return (np.asarray(features_b, np.float32) @ pb) @ (np.asarray(features_a, np.float32).reshape(-1) @ pa)

    def score(self, a: str, embedding_a: np.ndarray, type_a: str, color_a: str, b: str,
              embeddings_b: np.ndarray, types_b: Sequence[str], colors_b: Sequence[str]) -> np.ndarray:
        """How well garment ``a`` goes with each garment of group ``b`` (higher: better)."""
        xa = self.features(np.asarray(embedding_a)[None], [type_a], [color_a])[0]
        xb = self.features(embeddings_b, types_b, colors_b)
        out = np.zeros(len(types_b), np.float32)
        if self.w_bilinear:
            out += self.w_bilinear * self.bilinear(a, xa, b, xb)
        if self.w_prior:
            out += self.w_prior * self.prior(a, type_a, color_a, b, types_b, colors_b)
        return out

    def query_vector(self, a: str, embedding_a: np.ndarray, type_a: str, color_a: str, b: str) -> np.ndarray:
        """Garment ``a`` mapped into group ``b``'s embedding space (unit length): the catalog
        items of group b nearest to it score highest on the learned projection's embedding part."""
        xa = self.features(np.asarray(embedding_a)[None], [type_a], [color_a])[0]
        _, pa, pb, _ = self._sides(a, b)
        q = pb[: self.embedding_dim] @ (xa @ pa)
        if not self.w_bilinear or not np.any(q):
            q = np.asarray(embedding_a, np.float32)  # prior only: fall back to the garment's own look
        return (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)

    # --- reasons ------------------------------------------------------------------------------

    def reason(self, a: str, type_a: str, color_a: str, b: str, type_b: str, color_b: str) -> str:
        """One short sentence why ``b`` goes with ``a``, from the strongest positive evidence."""
        w, _, _, flipped = self._sides(a, b)
        noun_a, noun_b = _plural(type_a, a), _plural(type_b, b)
        color_lift = type_lift = 0.0
        if color_a in self.colors and color_b in self.colors:
            i, j = self.colors.index(color_a), self.colors.index(color_b)
            color_lift = float(w.color_pmi[j, i] if flipped else w.color_pmi[i, j])
        if type_a in self.types and type_b in self.types:
            i, j = self.types.index(type_a), self.types.index(type_b)
            type_lift = float(w.type_pmi[j, i] if flipped else w.type_pmi[i, j])
        if color_lift >= type_lift and color_lift > 0:
            return f"{color_a} {noun_a} are often worn with {color_b} {noun_b}"
        if type_lift > 0:
            return f"{noun_a} are often worn with {noun_b}"
        return f"its look suits {color_a} {noun_a} in street photos" if color_a else \
            f"its look suits {noun_a} in street photos"

    # --- files --------------------------------------------------------------------------------

    def header(self) -> dict:
        return {"embedding_dim": self.embedding_dim, "rank": self.rank, "attribute_scale": self.attribute_scale,
                "w_bilinear": self.w_bilinear, "w_prior": self.w_prior, "types": list(self.types),
                "colors": list(self.colors), "pairs": {f"{a}|{b}": w.outfits for (a, b), w in self.pairs.items()},
                "info": self.info}

    def save(self, path: Path) -> Path:
        return contract.write_weights(path, self.header(), {
            key: {name: getattr(w, name) for name in contract.PAIR_ARRAYS} for key, w in self.pairs.items()})

    @classmethod
    def from_arrays(cls, header: Mapping, pairs: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
                    source: str = "weights") -> CompatibilityModel:
        """The model of a header and its arrays per pair (as ``eyepic.compatibility`` stores them);
        ModelFileError when a shape does not fit."""
        types, colors = tuple(header["types"]), tuple(header["colors"])
        d, r = int(header["embedding_dim"]), int(header["rank"])
        n_features = d + len(types) + len(colors)
        built = {}
        for (a, b), arrays in pairs.items():
            w = PairWeights(*(np.asarray(arrays[name], np.float32) for name in contract.PAIR_ARRAYS),
                            outfits=int(header.get("pairs", {}).get(f"{a}|{b}", 0)))
            if w.a.shape != (n_features, r) or w.b.shape != (n_features, r) or \
                    w.color_pmi.shape != (len(colors), len(colors)) or w.type_pmi.shape != (len(types), len(types)):
                raise ModelFileError(f"{source}: pair {a}|{b} has arrays of the wrong shape")
            if a not in OUTFIT_GROUPS or b not in OUTFIT_GROUPS:
                raise ModelFileError(f"{source}: pair {a}|{b} names a group outside {', '.join(OUTFIT_GROUPS)}")
            built[pair_key(a, b)] = w if pair_key(a, b) == (a, b) else \
                PairWeights(w.b, w.a, w.color_pmi.T, w.type_pmi.T, w.outfits)
        return cls(embedding_dim=d, rank=r, attribute_scale=float(header["attribute_scale"]),
                   w_bilinear=float(header["w_bilinear"]), w_prior=float(header["w_prior"]), pairs=built,
                   types=types, colors=colors, info=dict(header.get("info", {})))

    @classmethod
    def load(cls, path: Path) -> CompatibilityModel:
        """The model saved at ``path``; ModelFileError names what does not fit."""
        header, pairs = contract.read_weights(path)
        return cls.from_arrays(header, pairs, str(path))


def _plural(type_name: str, group_name: str) -> str:
    """"tops", "jeans", "t-shirts": the type's plain English name in the plural (the group's if unknown)."""
    try:
        en = taxonomy.garment_type(type_name).en.split(" / ")[0].lower()
    except KeyError:
        en = group_name
    if en.endswith("ss"):
        return en + "es"
    if en.endswith(("s", "wear")):
        return en
    return en + "s"
