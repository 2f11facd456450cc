"""How a classifier export's outputs become the labels a user sees.

The calibrated color fusion (``metadata.json`` ``color_fusion``) and a group
and type that agree. Serving (``serving.analyzer``) and evaluation
(``training.evaluate_classifier``) both read outputs through these functions, so what
evaluation scores is what serving serves.
"""

from __future__ import annotations

import numpy as np

from eyepic import taxonomy
from eyepic.colors import FUSION_FLOOR, fuse_color


def color_fusion_weight(metadata: dict) -> float:
    """The pixel weight an export's metadata carries (0: the color head alone)."""
    return float(metadata.get("color_fusion", {}).get("pixel_weight", 0.0))


def color_fusion_window(metadata: dict) -> float:
    """The central share of a box whose pixels were fused at calibration (1: the whole box,
    as exports calibrated before windows were)."""
    return float(metadata.get("color_fusion", {}).get("window", 1.0))


def served_color_probs(metadata: dict, color_probs: np.ndarray, shares: list[np.ndarray | None]) -> np.ndarray:
    """The color probabilities a user is shown: the head's, fused with the
    pixel shares of each crop that has them (weight from ``metadata``)."""
    weight = color_fusion_weight(metadata)
    floor = float(metadata.get("color_fusion", {}).get("floor", FUSION_FLOOR))
    probs = np.array(color_probs, dtype=np.float64)
    for i, share in enumerate(shares):
        if share is not None and weight > 0:
            probs[i] = fuse_color(probs[i], share, weight, floor)
    return probs


def top_label(probs: np.ndarray, names: list[str]) -> tuple[str, float]:
    i = int(np.argmax(probs))
    return names[i], float(probs[i])


def consistent_labels(
    group_probs: np.ndarray, groups: list[str], type_probs: np.ndarray, types: list[str]
) -> tuple[str, float, str, float]:
    """A group and a type that agree (never "shoes" in group "hat").

    A group's evidence is the mean of its own head's probability and the
    summed probability of its types; the type is then the likeliest one
    inside that group.
    """
    group_of_type = groups_of(types)
    evidence = group_evidence(group_probs, groups, type_probs, group_of_type)
    g = int(np.argmax(evidence))
    return (groups[g], float(evidence[g]), *type_inside(groups[g], group_of_type, type_probs, types))


def group_evidence(group_probs: np.ndarray, groups: list[str], type_probs: np.ndarray,
                   group_of_type: np.ndarray) -> np.ndarray:
    """Per group: the mean of the group head's probability and its types' summed probability."""
    return np.array([0.5 * (float(group_probs[g]) + float(type_probs[group_of_type == name].sum()))
                     for g, name in enumerate(groups)])


def groups_of(types: list[str]) -> np.ndarray:
    """The group of each type name ("" for names the taxonomy lacks)."""
    return np.array([taxonomy.group_of(t) if t in taxonomy.TYPE_NAMES else "" for t in types])


def type_inside(group: str, group_of_type: np.ndarray, type_probs: np.ndarray, types: list[str]) -> tuple[str, float]:
    """The likeliest type of ``group`` and its probability (0 when the group has no type)."""
    inside = np.where(group_of_type == group, type_probs, -1.0)
    t = int(np.argmax(inside))
    return types[t], float(type_probs[t]) if inside[t] >= 0 else 0.0
