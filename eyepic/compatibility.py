"""The compatibility model's contract: outfit groups, garment features and the weights file.

Shared by the stage that trains the model (``training.train_outfits``) and
the one that serves it (``outfits.model``), which may not import each other:
like ``eyepic.exports`` for the Keras models, this is the one place that
says which pairs of groups are modelled, how a garment becomes the model's
input (``features``: written once, so training and serving cannot skew) and
how the weights are stored (one ``.npz``: a JSON header plus four arrays per
pair of groups).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# Groups an outfit is made of here; bags and hats are not suggested.
OUTFIT_GROUPS: tuple[str, ...] = ("onepiece", "outer", "top", "bottom", "shoes")
# For a garment of each group, the groups that complete its look: top <-> bottom,
# outer over both, shoes with everything; a one-piece takes outer and shoes.
PARTNERS: dict[str, tuple[str, ...]] = {
    "top": ("bottom", "outer", "shoes"),
    "bottom": ("top", "outer", "shoes"),
    "outer": ("top", "bottom", "shoes"),
    "onepiece": ("outer", "shoes"),
    "shoes": ("top", "bottom", "outer"),
}
FORMAT = 1
WEIGHTS_FILE = "outfits.npz"
PAIR_ARRAYS = ("a", "b", "color_pmi", "type_pmi")
_HEADER = "header"


class ModelFileError(ValueError):
    """The compatibility model's file is missing, unreadable or does not fit this code."""


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The canonical (ordered) pair of two outfit groups: the model stores each pair once."""
    return (a, b) if OUTFIT_GROUPS.index(a) <= OUTFIT_GROUPS.index(b) else (b, a)


def model_pairs() -> list[tuple[str, str]]:
    """Every pair of groups ``PARTNERS`` asks about, canonical, in a fixed order."""
    pairs = {pair_key(g, p) for g, partners in PARTNERS.items() for p in partners}
    return sorted(pairs, key=lambda ab: (OUTFIT_GROUPS.index(ab[0]), OUTFIT_GROUPS.index(ab[1])))


def features(embeddings: np.ndarray, types: Sequence[str], colors: Sequence[str], type_names: Sequence[str],
             color_names: Sequence[str], attribute_scale: float) -> np.ndarray:
    """Rows of [embedding, one-hot type, one-hot color] (one-hots scaled; an unknown name: zeros)."""
    e = np.asarray(embeddings, np.float32).reshape(len(types), -1)
    t = np.zeros((len(types), len(type_names)), np.float32)
    c = np.zeros((len(colors), len(color_names)), np.float32)
    type_index = {name: i for i, name in enumerate(type_names)}
    color_index = {name: i for i, name in enumerate(color_names)}
    for i, name in enumerate(types):
        if name in type_index:
            t[i, type_index[name]] = attribute_scale
    for i, name in enumerate(colors):
        if name in color_index:
            c[i, color_index[name]] = attribute_scale
    return np.concatenate([e, t, c], axis=1)


def write_weights(path: Path, header: Mapping, pairs: Mapping[tuple[str, str], Mapping[str, np.ndarray]]) -> Path:
    """One ``.npz``: the JSON ``header`` and ``PAIR_ARRAYS`` per pair (written atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {_HEADER: np.asarray(json.dumps({**header, "format": FORMAT}, sort_keys=True))}
    for (a, b), weights in pairs.items():
        for name in PAIR_ARRAYS:
            arrays[f"{a}|{b}/{name}"] = np.asarray(weights[name], np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def read_weights(path: Path) -> tuple[dict, dict[tuple[str, str], dict[str, np.ndarray]]]:
    """(header, arrays per pair) of a weights file; ModelFileError names what does not fit."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z[_HEADER]))
            stored = {name: z[name] for name in z.files if name != _HEADER}
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a compatibility model file ({exc})") from None
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: format {header.get('format')!r}, this code reads {FORMAT}")
    pairs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key in header.get("pairs", {}):
        a, _, b = key.partition("|")
        try:
            pairs[(a, b)] = {name: stored[f"{key}/{name}"] for name in PAIR_ARRAYS}
        except KeyError as exc:
            raise ModelFileError(f"{path}: pair {key} lacks {exc}") from None
    return header, pairs
