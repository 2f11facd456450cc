"""Released models: the trained weights a fresh clone serves, tracked in ``models/``.

``var/`` is scratch and may vanish; what ``make demo`` serves must come with
the repository. A release folder ``models/<name>/`` holds:

- ``model.weights.h5``: the Keras weights (the model rebuilt from
  ``release.json`` loads them);
- ``release.json``: what rebuilds and re-exports the model exactly: its kind,
  version, ``model_config``, export options (mirror averaging), and what the
  export carries unchanged (color-fusion calibration, validation metrics,
  training summary, data fingerprint, the commit that trained it);
- ``recipe.yaml``: the recipe it was trained with;
- ``MODEL_CARD.md`` and the training curves (PNG).

``models/SHA256SUMS`` lists every file of every release. ``install_release``
checks it before anything loads, so a truncated or swapped file is a
one-line ``ReleaseError`` naming the file, never a half-working server.
Installing exports a SavedModel into ``<model_dir>/<name>/<version>/`` with
the same layout as a training export (metadata.json, warm-up requests), the
calibration carried from the release rather than recomputed; an identical
install already there is reused, so a second ``make demo`` costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

WEIGHTS = "model.weights.h5"
RELEASE_JSON = "release.json"
RECIPE = "recipe.yaml"
CARD = "MODEL_CARD.md"
CURVES = "training_curves.png"
CHECKSUMS = "SHA256SUMS"
FORMAT = 1
# What an export's metadata.json carries over into a release and back.
CARRIED = ("metrics", "color_fusion", "data_hash", "test_time_flip")


class ReleaseError(Exception):
    """A release file is missing, corrupt or does not fit its model; the message names the file."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def release_files(root: Path) -> list[Path]:
    """Every file of every release under ``root`` (the checksum file itself excluded), sorted."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def write_checksums(root: Path) -> Path:
    """``root/SHA256SUMS`` in ``sha256sum`` format (``sha256sum -c`` checks it too)."""
    root = Path(root)
    lines = [f"{sha256(p)}  {p.relative_to(root).as_posix()}" for p in release_files(root)]
    out = root / CHECKSUMS
    out.write_text("\n".join(lines) + "\n")
    return out


def read_checksums(root: Path) -> dict[str, str]:
    path = Path(root) / CHECKSUMS
    if not path.is_file():
        raise ReleaseError(f"{path}: missing; the release cannot be verified")
    sums: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise ReleaseError(f"{path}:{n}: not a '<sha256>  <file>' line")
        sums[name] = digest
    return sums


def verify_release(root: Path, name: str) -> Path:
    """``root/name`` after checking each of its files against ``root/SHA256SUMS``."""
    root, folder = Path(root), Path(root) / name
    if not (folder / RELEASE_JSON).is_file():
        raise ReleaseError(f"{folder / RELEASE_JSON}: missing; no release of {name!r} here")
    sums = read_checksums(root)
    listed = {k: v for k, v in sums.items() if k.startswith(f"{name}/")}
    if not listed:
        raise ReleaseError(f"{root / CHECKSUMS}: lists no file of {name!r}")
    for rel, expected in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            raise ReleaseError(f"{path}: missing (listed in {root / CHECKSUMS})")
        if sha256(path) != expected:
            raise ReleaseError(f"{path}: checksum mismatch with {root / CHECKSUMS}; the file is corrupt or "
                               "was replaced (git checkout restores it)")
    unlisted = [p for p in release_files(folder) if p.relative_to(root).as_posix() not in listed]
    if unlisted:
        raise ReleaseError(f"{unlisted[0]}: not listed in {root / CHECKSUMS}")
    return folder


def read_release(folder: Path) -> dict:
    path = Path(folder) / RELEASE_JSON
    try:
        release = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{path}: unreadable ({exc})") from None
    if release.get("format") != FORMAT or release.get("kind") not in ("classifier", "detector"):
        raise ReleaseError(f"{path}: not a release of format {FORMAT} with kind classifier or detector")
    return release


# --- making a release from an export ----------------------------------------------------------


def assign_from_export(model: Any, version_dir: Path) -> None:
    """Copy a SavedModel's variables into ``model``, rebuilt from the export's config.

    ``keras.export.ExportArchive`` tracks the variables in the model's own
    order and names, so they are matched one to one; any name or shape
    mismatch is an error, never a guess.
    """
    import tensorflow as tf

    saved = tf.saved_model.load(str(version_dir)).variables
    if len(saved) != len(model.variables):
        raise ReleaseError(f"{version_dir}: {len(saved)} variables, the rebuilt model has {len(model.variables)}")
    for var, value in zip(model.variables, saved):
        name = value.name.removesuffix(":0")
        # RNG state of dropout / augmentation layers is numbered per process and unused in inference.
        same = name == var.path or ("seed_generator" in name and "seed_generator" in var.path)
        if not same or tuple(value.shape) != tuple(var.shape):
            raise ReleaseError(f"{version_dir}: variable {name} {tuple(value.shape)} does not fit "
                               f"{var.path} {tuple(var.shape)}")
    for var, value in zip(model.variables, saved):
        var.assign(value.numpy())


def build_model(release: dict) -> Any:
    """The untrained Keras model a release's weights belong to."""
    if release["kind"] == "classifier":
        from training.models.ensemble import model_from_config

        return model_from_config(release["model_config"])
    from training.models.detector import DetectorConfig, build_detector

    return build_detector(DetectorConfig(**release["model_config"]))


def make_release(version_dir: Path, out_root: Path, recipe: Path, run_dir: Path | None = None,
                 commit: str = "") -> Path:
    """Write ``out_root/<kind>/`` from an export: weights, release.json, recipe, curves.

    The card and the checksums are written by ``write_card`` and
    ``write_checksums`` once the release's numbers are measured.
    """
    version_dir = Path(version_dir)
    meta = json.loads((version_dir / "metadata.json").read_text())
    kind = meta.get("kind", "classifier")
    training = meta.get("training", {})
    release = {
        "format": FORMAT,
        "kind": kind,
        "name": meta["name"],
        "version": int(meta["version"]),
        "model_config": meta["model_config"],
        "classes": meta["classes"],
        **{k: meta[k] for k in CARRIED if k in meta},
        "training": _training_summary(training),
        # the commit whose code trained it: given, else recorded at the start of training,
        # else (older runs) the commit that exported it
        "trained_commit": commit or training.get("git_commit") or meta.get("git_commit", "unknown"),
        "source_export": f"{meta['name']}/{meta['version']}",
    }
    if kind == "detector":
        release["detector_options"] = {k: meta[k] for k in ("score_threshold", "iou_threshold", "max_detections")}
    model = build_model(release)
    assign_from_export(model, version_dir)
    folder = Path(out_root) / kind
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model.save_weights(folder / WEIGHTS)
    release["weights_sha256"] = sha256(folder / WEIGHTS)
    (folder / RELEASE_JSON).write_text(json.dumps(release, indent=2, ensure_ascii=False) + "\n")
    shutil.copyfile(recipe, folder / RECIPE)
    curves = Path(run_dir) / CURVES if run_dir else None
    if curves and curves.is_file():
        shutil.copyfile(curves, folder / CURVES)
    return folder


def _training_summary(training: dict) -> dict:
    """The training record without its per-epoch history (the curves PNG shows it)."""
    summary = {k: v for k, v in training.items() if k != "history"}
    history = training.get("history", {})
    if history:
        summary["final"] = {k: round(v[-1], 4) for k, v in history.items() if v}
    return summary


# --- installing a release ---------------------------------------------------------------------


def installed_version(model_dir: Path, name: str, weights_sha256: str) -> Path | None:
    """An export under ``model_dir/name`` already made from these weights, if any."""
    for meta_path in sorted(Path(model_dir, name).glob("*/metadata.json")):
        if not meta_path.parent.name.isdigit():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("release", {}).get("weights_sha256") == weights_sha256:
            return meta_path.parent
    return None


def install_release(root: Path, kind: str, model_dir: Path, name: str,
                    warmup_images: Sequence[bytes] = ()) -> tuple[Path, bool]:
    """(export folder, freshly exported?) for the release ``root/kind``.

    Verifies the checksums first; exports to the release's version number, or
    the next free one where that number holds another model.
    """
    folder = verify_release(root, kind)
    release = read_release(folder)
    if release["kind"] != kind:
        raise ReleaseError(f"{folder / RELEASE_JSON}: a {release['kind']} release in the {kind} folder")
    existing = installed_version(model_dir, name, release["weights_sha256"])
    if existing is not None:
        return existing, False
    model = build_model(release)
    try:
        model.load_weights(folder / WEIGHTS)
    except (ValueError, OSError, KeyError) as exc:
        raise ReleaseError(f"{folder / WEIGHTS}: does not fit the model in {RELEASE_JSON} "
                           f"({str(exc).splitlines()[0][:160]})") from None
    from training.export import export_classifier, export_detector, next_version

    version = release["version"]
    if (Path(model_dir) / name / str(version)).exists():
        version = next_version(Path(model_dir) / name)
    carried = {k: release[k] for k in ("color_fusion",) if k in release}
    carried["release"] = {"weights_sha256": release["weights_sha256"], "version": release["version"],
                          "trained_commit": release["trained_commit"]}
    common = dict(metrics=release.get("metrics", {}), training=release.get("training", {}),
                  data_hash=release.get("data_hash", ""), warmup_images=list(warmup_images),
                  version=version, extra_metadata=carried)
    if kind == "classifier":
        out = export_classifier(model, model_dir, name, test_time_flip=bool(release.get("test_time_flip")),
                                **common)
    else:
        from training.models.detector import DetectorConfig

        out = export_detector(model, DetectorConfig(**release["model_config"]), model_dir, name, **common)
    return out, True


# --- the model card ---------------------------------------------------------------------------

LICENCES = {
    "clothing-small": "CC0 1.0 (Alexey Grigorev's clothing dataset, small)",
    "clothing-extra": "CC0 1.0 (Alexey Grigorev's clothing dataset)",
    "ccp": "Apache-2.0 (Clothing Co-Parsing, Yang, Luo, Lin, CVPR 2014; cite the paper)",
}


def collect_evaluations(version_dir: Path) -> dict:
    """Headline numbers of every evaluation report kept beside an export (``evaluation/**/evaluation.json``)."""
    found: dict = {}
    for path in sorted(Path(version_dir, "evaluation").rglob("evaluation.json")):
        report = json.loads(path.read_text())
        data = path.parent.name if path.parent.name != "evaluation" else "validation"
        if "heads" in report:
            found[data] = {
                "samples": report.get("samples"),
                "accuracy": {h: round(m["accuracy"], 4) for h, m in report["heads"].items()},
                "accuracy_in_label_set": {h: round(m["accuracy_in_label_set"], 4)
                                          for h, m in report["heads"].items() if "accuracy_in_label_set" in m},
                "per_class_type_accuracy": {
                    c: round(v["recall"], 4) for c, v in report["heads"].get("type", {}).get("per_class", {}).items()
                    if isinstance(v, dict) and v.get("support") and "recall" in v
                },
                "retrieval_p10": {f"{setting} / {relevance}": round(m["p@10"], 4)
                                  for setting, by_relevance in report.get("retrieval", {}).items()
                                  for relevance, m in by_relevance.items() if m and m.get("p@10") is not None},
            }
        elif "map50" in report:
            found[data] = {k: report[k] for k in ("photos", "map50", "map", "apparel_map50", "apparel_map")
                           if k in report}
            found[data]["ap50"] = {k: m["ap50"] for k, m in report.get("per_class", {}).items()}
    return found


def add_evaluations(folder: Path, evaluations: dict, commands: dict[str, str]) -> dict:
    """Record measured evaluations (and the commands behind them) in ``release.json``."""
    path = Path(folder) / RELEASE_JSON
    release = json.loads(path.read_text())
    release["evaluations"] = {k: {**v, "command": commands.get(k, "")} for k, v in evaluations.items()}
    path.write_text(json.dumps(release, indent=2, ensure_ascii=False) + "\n")
    return release


def write_card(folder: Path, notes: str = "") -> Path:
    """``MODEL_CARD.md`` from ``release.json`` plus hand-written notes (latency, limits)."""
    folder = Path(folder)
    release = read_release(folder)
    training = release.get("training", {})
    lines = [f"# Model card: {release['kind']} (release version {release['version']})", ""]
    lines += ["| | |", "|---|---|",
              f"| weights | `{WEIGHTS}` (sha256 `{release['weights_sha256'][:16]}…`, {_size(folder / WEIGHTS)}) |",
              f"| recipe | `{RECIPE}` |",
              f"| trained by commit | `{release.get('trained_commit', 'unknown')}` |",
              f"| training data fingerprint | `{release.get('data_hash', '')}` |",
              f"| classes | {_classes(release)} |"]
    if "train_seconds" in training:
        lines.append(f"| training time | {training['train_seconds'] / 60:.0f} min on 2 CPU cores |")
    if training.get("kept") == "last epoch":
        lines.append(f"| epochs | {training.get('epochs_run', '?')} run (last run), the last kept |")
    elif "best_epoch" in training or "epochs_run" in training:
        lines.append(f"| epochs | {training.get('epochs_run', '?')} run, best {training.get('best_epoch', '?')} |")
    lines += ["", "## Validation numbers", "",
              "Measured on validation splits that no model trained on; re-measured by "
              "`tests/test_release.py` (slow) from the released weights within ±0.01.", ""]
    for data, ev in release.get("evaluations", {}).items():
        lines.append(f"### {data}")
        lines.append("")
        if ev.get("command"):
            lines += [f"`{ev['command']}`", ""]
        if "accuracy" in ev:
            lines.append(f"{ev.get('samples')} samples. Accuracy: " + ", ".join(
                f"{h} {v:.3f}" for h, v in ev["accuracy"].items()) + ".")
            if ev.get("accuracy_in_label_set"):
                lines.append("Within the data set's own label set: " + ", ".join(
                    f"{h} {v:.3f}" for h, v in ev["accuracy_in_label_set"].items()) + ".")
            per = ev.get("per_class_type_accuracy", {})
            if per:
                lines.append("Type accuracy per class: " + ", ".join(f"{c} {v:.2f}" for c, v in per.items()) + ".")
            retrieval = ev.get("retrieval_p10", {})
            if retrieval:
                lines.append("Retrieval precision@10 (query set / relevance): " + ", ".join(
                    f"{k} {v:.3f}" for k, v in retrieval.items()) + ".")
        else:
            lines.append(f"{ev.get('photos')} photos. mAP@0.5 {ev['map50']:.3f} (apparel groups "
                         f"{ev['apparel_map50']:.3f}), mAP@0.5:0.95 {ev['map']:.3f}. AP@0.5: " + ", ".join(
                             f"{k} {v:.3f}" for k, v in ev.get("ap50", {}).items() if v is not None) + ".")
        lines.append("")
    sources = training.get("sources") or _sources(release)
    lines += ["## Training data and licences", ""]
    lines += [f"- `{s}`: {LICENCES.get(s, 'see ../shared/data/README.md')}" for s in sources]
    lines += ["", "Train splits only; validation photos of each source are never trained on. "
              "CCP splits by a stable hash of the photo id; the product sets keep their own splits.", ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    lines += ["## Verifying", "", f"`cd models && sha256sum -c {CHECKSUMS}`, or "
              "`eyepic release verify`; `make demo` refuses to start on a mismatch.", ""]
    out = folder / CARD
    out.write_text("\n".join(lines))
    return out


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _classes(release: dict) -> str:
    classes = release.get("classes", {})
    return "; ".join(f"{k}: {len(v)}" for k, v in classes.items())


def _sources(release: dict) -> list[str]:
    if release["kind"] == "detector":
        return ["ccp"]
    return ["clothing-small", "clothing-extra", "ccp"]

