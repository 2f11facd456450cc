"""Evaluate an exported classifier exactly as it is served.

Crops go through the same path as the Analyzer's (PIL crop -> PNG -> the
export's in-graph decode/resize), so the numbers describe what users get.

* Per head: accuracy, macro-F1, a per-class table, a confusion-matrix PNG.
* Retrieval (cosine on the served ``embedding``), see ``retrieval_metrics``:
  precision@k and recall@k (k = 1, 5, 10) for "same fine type" and "same
  type and color", in three settings: all items (leave-one-out),
  product -> product (leave-one-out) and street crop -> product photo.
* Baseline: the same retrieval numbers on the backbone's pooled features
  (layer ``pool``, before the projection), which shows whether the trained
  embedding beats raw features. It needs the Keras model, not only the
  SavedModel: pass ``keras_model`` (right after training), or let
  ``rebuild_model`` rebuild it from an export's ``metadata.json`` and
  variables; without either the report says the baseline is missing.
* Behavioral checks (Made-With-ML style), see ``behavioral_checks``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eyepic.exports import ModelClient
from eyepic.readout import color_fusion_weight, color_fusion_window, consistent_labels, served_color_probs
from training.behavioral import behavioral_checks
from training.data.samples import FULL, Sample
from training.metrics import KS, classification_metrics, label_set_accuracy, retrieval_report
from training.predictions import pooled_features, predict_samples, sample_color_shares


def evaluate_classifier(client: ModelClient, samples: Sequence[Sample], out_dir: Path,
                        name: str = "classifier", keras_model: Any | None = None,
                        behavioral: bool = True) -> dict:
    """Every metric of the served model on ``samples``; writes evaluation.json/.md and confusion PNGs.

    ``keras_model`` (the model behind the export) adds the pooled-feature
    baseline; it is used only if its embedding matches the served one, so
    the baseline always describes the export being evaluated.
    """
    meta = client.metadata(name)
    out = predict_samples(client, name, samples)
    if color_fusion_weight(meta.raw) > 0:  # as served: crops fuse pixel colors
        window = color_fusion_window(meta.raw)
        out["color_probs"] = served_color_probs(
            meta.raw, out["color_probs"], [None if s.box == FULL else sample_color_shares(s, window) for s in samples])
    report: dict = {"model": meta.model_version, "samples": len(samples), "heads": {}, "notes": []}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for head in ("group", "type", "color"):
        classes = meta.classes[head]
        pred = [classes[i] for i in out[f"{head}_probs"].argmax(1)]
        true = [getattr(s, head) for s in samples]
        keep = [i for i, t in enumerate(true) if t]
        if not keep:  # e.g. product photos carry no color labels: no number beats a fake 0
            continue
        t, p = [true[i] for i in keep], [pred[i] for i in keep]
        report["heads"][head] = classification_metrics(t, p, classes)
        report["heads"][head]["accuracy_in_label_set"] = label_set_accuracy(
            out[f"{head}_probs"][keep], t, classes)
        plot_confusion(t, p, classes, out_dir / f"confusion_{head}.png", f"{head} (n={len(t)})")
    served_groups = [consistent_labels(g, meta.classes["group"], t, meta.classes["type"])[0]
                     for g, t in zip(out["group_probs"], out["type_probs"])]
    report["retrieval"] = retrieval_report(out["embedding"], samples, predicted_groups=served_groups)
    if keras_model is None:
        report["notes"].append("no pooled-feature baseline: the Keras model could not be rebuilt")
    else:
        pooled, emb = pooled_features(keras_model, samples, test_time_flip=bool(meta.raw.get("test_time_flip")))
        gap = float(np.abs(emb - out["embedding"]).max())
        if gap > 1e-3:
            report["notes"].append(f"no pooled-feature baseline: the Keras model differs from the export "
                                   f"(embedding max |diff| {gap:.2g})")
        else:
            report["retrieval_baseline"] = retrieval_report(pooled, samples, predicted_groups=served_groups)
    if behavioral:
        report["behavioral"] = behavioral_checks(client, name, samples)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    (out_dir / "evaluation.md").write_text(markdown_report(report))
    return report


def _retrieval_table(retrieval: dict, ks: Sequence[int] = KS) -> list[str]:
    cols = [f"p@{k}" for k in ks] + [f"r@{k}" for k in ks]
    lines = ["| setting | relevance | " + " | ".join(cols) + " | queries | no relevant item |",
             "|---|---|" + "---|" * (len(cols) + 2)]
    for setting, by_relevance in retrieval.items():
        for relevance, m in by_relevance.items():
            lines.append(f"| {setting} | {relevance} | " + " | ".join(f"{m[c]:.3f}" for c in cols)
                         + f" | {m['queries']} | {m['no_relevant']} |")
    return lines


def markdown_report(report: dict) -> str:
    lines = [f"# Classifier evaluation: {report['model']}", "", f"{report['samples']} samples.", "",
             "| head | accuracy | accuracy in the data's label set | macro-F1 | n |", "|---|---|---|---|---|"]
    for head, m in report["heads"].items():
        in_set = m.get("accuracy_in_label_set")
        lines.append(f"| {head} | {m['accuracy']:.3f} | {'' if in_set is None else f'{in_set:.3f}'} "
                     f"| {m['macro_f1']:.3f} | {m['n']} |")
    lines += ["", "## Retrieval: served embedding", "",
              "Cosine nearest neighbours. p@k: share of the k nearest with the query's label; "
              "r@k: share of queries with at least one such item in the k nearest (hit rate). "
              "same_type_color only where both items have a color label (product photos have none). "
              "street_to_product_as_served: only products of the query's predicted group are ranked, "
              "as the search API does by default; a wrongly grouped query counts as a miss.", ""]
    lines += _retrieval_table(report["retrieval"])
    if "retrieval_baseline" in report:
        lines += ["", "## Retrieval baseline: pooled backbone features (before the projection)", ""]
        lines += _retrieval_table(report["retrieval_baseline"])
    if report.get("behavioral"):
        lines += ["", "## Behavioral checks", "", "| check | rate | n | details |", "|---|---|---|---|"]
        for check, m in report["behavioral"].items():
            details = ", ".join(f"{k} {v}" for k, v in m.items() if k not in ("rate", "n"))
            rate = f"{m['rate']:.3f}" if "rate" in m else "n/a"
            lines.append(f"| {check} | {rate} | {m['n']} | {details} |")
    for note in report.get("notes", []):
        lines += ["", f"Note: {note}."]
    for head, m in report["heads"].items():
        lines += ["", f"## {head} per class", "", "| class | precision | recall | f1 | support |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                  for c, v in m["per_class"].items()]
    return "\n".join(lines) + "\n"


def plot_confusion(true, pred, classes, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = [c for c in classes if c in set(true) | set(pred)]
    idx = {c: i for i, c in enumerate(used)}
    m = np.zeros((len(used), len(used)), dtype=int)
    for t, p in zip(true, pred):
        m[idx[t], idx[p]] += 1
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(used), 1 + 0.45 * len(used)))
    ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(used)), used, rotation=90)
    ax.set_yticks(range(len(used)), used)
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
