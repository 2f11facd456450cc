"""The released compatibility model: ``models/outfits/`` (weights, release.json, recipe, card).

Like the classifier's and detector's releases (``training.release``), the
folder is covered by ``models/SHA256SUMS`` and checked by ``eyepic release
verify``; unlike them it needs no export step: serving reads the ``.npz``
directly (``outfits.model.CompatibilityModel.load``; the file format is
``eyepic.compatibility``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from eyepic.compatibility import WEIGHTS_FILE, read_weights
from training.release import CARD, CHECKSUMS, RECIPE, RELEASE_JSON, sha256, write_checksums

KIND = "outfits"


def make_outfits_release(model_path: Path, root: Path, recipe: Path, evaluation: dict, command: str,
                         notes: str = "") -> Path:
    """``root/outfits/`` from a trained model file, its recipe and its validation report; rewrites
    ``root/SHA256SUMS``."""
    header, _ = read_weights(model_path)  # refuses a file of another format
    folder = Path(root) / KIND
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copyfile(model_path, folder / WEIGHTS_FILE)
    shutil.copyfile(recipe, folder / RECIPE)
    info = header.get("info", {})
    release = {
        "format": 1, "kind": KIND, "name": KIND, "version": int(info.get("version", 1)),
        "weights_sha256": sha256(folder / WEIGHTS_FILE),
        "data_hash": info.get("data_fingerprint", ""),
        "classifier": info.get("classifier", ""),
        "trained_commit": info.get("commit", "unknown"),
        "setting": {k: info.get("setting", {}).get(k) for k in ("rank", "l2", "attribute_scale", "w_bilinear",
                                                               "w_prior")},
        "training": {k: info[k] for k in ("train_photos", "train_outfits", "selection") if k in info},
        "evaluations": {"validation": {**{k: v for k, v in evaluation.items() if k != "markdown"},
                                       "command": command}},
    }
    (folder / RELEASE_JSON).write_text(json.dumps(release, indent=2) + "\n")
    write_outfits_card(folder, release, header, evaluation.get("markdown", ""), notes)
    write_checksums(root)
    return folder


def write_outfits_card(folder: Path, release: dict, header: dict, report_md: str,
                       notes: str = "") -> Path:
    s = release["setting"]
    ev = release["evaluations"]["validation"]
    pairs = ", ".join(f"{key.replace('|', '-')} {n}" for key, n in header.get("pairs", {}).items())
    parts = "projection + prior" if s["w_bilinear"] and s["w_prior"] else (
        "projection only" if s["w_bilinear"] else "co-occurrence prior only")
    lines = [
        f"# Model card: outfits (compatibility model, release version {release['version']})", "",
        "| | |", "|---|---|",
        f"| weights | `{WEIGHTS_FILE}` (sha256 `{release['weights_sha256'][:16]}…`, "
        f"{(folder / WEIGHTS_FILE).stat().st_size / 1e3:.0f} kB, numpy) |",
        f"| recipe | `{RECIPE}` (`eyepic train outfits`) |",
        f"| trained by commit | `{release['trained_commit']}` |",
        f"| training data fingerprint | `{release['data_hash']}` (CCP photo list + classifier version) |",
        f"| features from | classifier `{release['classifier']}` (embedding, type, color of each worn crop) |",
        f"| chosen | {parts}: rank {s['rank']}, L2 {s['l2']}, attribute scale {s['attribute_scale']}, "
        f"w_bilinear {s['w_bilinear']}, w_prior {s['w_prior']} |",
        f"| training outfits per pair | {pairs} |", "",
        "## What it is", "",
        "Per pair of groups, a learned bilinear projection of [embedding, one-hot type, one-hot color] "
        "(the one-hots weighted by the attribute scale; 0: the embedding alone) "
        "(symmetric in-batch InfoNCE: each garment must score its own outfit's partner above the "
        "partners worn in the other photos) plus a smoothed log-odds table of colour pairs and type "
        "pairs worn together (the co-occurrence prior, which also words each suggestion's reason). "
        "Which parts and weights: chosen by 4-way FITB on a stable 20 % of the CCP *train* photos "
        "(`training/train_outfits.py`), then refit on all train photos. CCP validation photos are "
        "only evaluated on.", "",
        "## Validation numbers (CCP validation photos)", "",
        report_md.strip(), "",
        f"Targets: FITB ≥ 0.50: {'met' if ev['fitb'] >= 0.5 else '**not met**'} ({ev['fitb']:.3f}); above the "
        f"visual-similarity baseline: {'met' if ev['fitb'] > ev['baselines']['visual_similarity'] else 'not met'} "
        f"({ev['fitb']:.3f} against {ev['baselines']['visual_similarity']:.3f}).", "",
        *_selection_table(release["training"].get("selection", [])),
        "## Training data and licences", "",
        "- `ccp`: Apache-2.0 (Clothing Co-Parsing, Yang, Luo, Lin, CVPR 2014; cite the paper). Train "
        "split only (stable hash of the photo id, `training.data.ccp.ccp_split`).", "",
    ]
    if notes.strip():
        lines += [notes.strip(), ""]
    lines += ["## Verifying", "", f"`cd models && sha256sum -c {CHECKSUMS}`, or `eyepic release verify`.", ""]
    out = folder / CARD
    out.write_text("\n".join(lines))
    return out


def _selection_table(trials: list[dict]) -> list[str]:
    """Why these parts: every setting tried, with its FITB on the inner split of the train photos."""
    if not trials:
        return []
    lines = ["## Why projection + prior (the grid search, inner split of the train photos)", "",
             "| projection | rank | L2 | attribute scale | prior weight | inner FITB |", "|---|---|---|---|---|---|"]
    for t in trials:
        projection = ("shared per group" if t.get("shared") else "per pair") if t["w_bilinear"] else "none"
        lines.append(f"| {projection} | {t['rank'] if t['w_bilinear'] else '-'} | "
                     f"{t['l2'] if t['w_bilinear'] else '-'} | {t['attribute_scale'] if t['w_bilinear'] else '-'} | "
                     f"{t['w_prior']} | {t['inner_fitb']:.3f} |")
    return lines + ["", "Averaged over three distractor draws; the best row is the release.", ""]
