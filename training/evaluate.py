"""Evaluate an exported classifier exactly as it is served.

Crops go through the same path as the Analyzer's (PIL crop -> PNG -> the
export's in-graph decode/resize), so the numbers describe what users get.
Per head: accuracy, macro-F1, a per-class table, a confusion-matrix PNG.
Retrieval: precision@k of same type among the nearest validation items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from eyepic.imaging import crop_encoded
from serving.model_client import ModelClient
from training.data.samples import FULL, Sample

HEAD_LABEL = {"group": "group", "type": "type", "color": "color"}


def encode_sample(sample: Sample) -> bytes:
    if sample.box == FULL:
        return sample.path.read_bytes()
    with Image.open(sample.path) as image:
        return crop_encoded(image.convert("RGB"), sample.box)


def predict_samples(client: ModelClient, name: str, samples: Sequence[Sample], batch: int = 32) -> dict:
    outs: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(samples), batch), desc="evaluating", unit="batch"):
        chunk = [encode_sample(s) for s in samples[start : start + batch]]
        for key, value in client.predict(name, chunk).items():
            outs.setdefault(key, []).append(value)
    return {k: np.concatenate(v) for k, v in outs.items()}


def classification_metrics(true: Sequence[str], pred: Sequence[str], classes: Sequence[str]) -> dict:
    per_class = {}
    f1s = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(true, pred))
        fp = sum(t != c and p == c for t, p in zip(true, pred))
        fn = sum(t == c and p != c for t, p in zip(true, pred))
        support = tp + fn
        if support == 0 and fp == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support:
            f1s.append(f1)
        per_class[c] = {"precision": round(precision, 4), "recall": round(recall, 4),
                        "f1": round(f1, 4), "support": support}
    accuracy = float(np.mean([t == p for t, p in zip(true, pred)])) if true else 0.0
    return {"accuracy": round(accuracy, 4), "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
            "n": len(true), "per_class": per_class}


def precision_at_k(embeddings: np.ndarray, labels: Sequence[str], ks=(1, 5, 10),
                   queries: np.ndarray | None = None, query_labels: Sequence[str] | None = None) -> dict:
    """Mean fraction of the k nearest gallery items sharing the query's label."""
    labels = np.asarray(labels)
    same_set = queries is None
    queries = embeddings if queries is None else queries
    query_labels = labels if query_labels is None else np.asarray(query_labels)
    sims = queries @ embeddings.T
    if same_set:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    return {f"p@{k}": round(float((labels[order[:, :k]] == query_labels[:, None]).mean()), 4) for k in ks}


def evaluate_classifier(client: ModelClient, samples: Sequence[Sample], out_dir: Path,
                        name: str = "classifier") -> dict:
    meta = client.metadata(name)
    out = predict_samples(client, name, samples)
    report: dict = {"model": meta.model_version, "samples": len(samples), "heads": {}}
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
        plot_confusion(t, p, classes, out_dir / f"confusion_{head}.png", f"{head} (n={len(t)})")
    emb = out["embedding"]
    report["retrieval"] = {"same_type": precision_at_k(emb, [s.type for s in samples])}
    street = [i for i, s in enumerate(samples) if s.source == "ccp"]
    product = [i for i, s in enumerate(samples) if s.source != "ccp"]
    if street and product:
        report["retrieval"]["street_to_product_same_type"] = precision_at_k(
            emb[product], [samples[i].type for i in product],
            queries=emb[street], query_labels=[samples[i].type for i in street])
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    (out_dir / "evaluation.md").write_text(markdown_report(report))
    return report


def markdown_report(report: dict) -> str:
    lines = [f"# Classifier evaluation: {report['model']}", "", f"{report['samples']} samples.", "",
             "| head | accuracy | macro-F1 | n |", "|---|---|---|---|"]
    for head, m in report["heads"].items():
        lines.append(f"| {head} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['n']} |")
    lines += ["", "## Retrieval (precision@k)", ""]
    for name, m in report["retrieval"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
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
