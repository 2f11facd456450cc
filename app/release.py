"""``eyepic release verify|install|make``: the models tracked in ``settings.release_dir``.

The stage code (``training.release``) knows one release folder; this module
decides which models a user gets (classifier, detector, under their served
names) and where their warm-up photos come from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.errors import UsageError
from eyepic.exports import latest_version_dir
from eyepic.settings import Settings


def install_releases(settings: Settings) -> list[Path]:
    """Export every released model in ``settings.release_dir`` into the model dir (verified,
    reused when already installed); returns the export folders."""
    from training.release import RELEASE_JSON, install_release

    done = []
    warmup = warmup_photos(settings)  # read once for both models
    for kind, name in (("classifier", settings.classifier_name), ("detector", settings.detector_name)):
        if not (settings.release_dir / kind / RELEASE_JSON).is_file():
            continue
        out, fresh = install_release(settings.release_dir, kind, settings.model_dir, name, warmup_images=warmup)
        print(f"{kind}: {'exported' if fresh else 'already installed'} {out} from {settings.release_dir / kind}",
              flush=True)
        done.append(out)
    return done


def warmup_photos(settings: Settings) -> list[bytes]:
    """A few real photos for TF Serving's warm-up records (none where the data is absent)."""
    photos = sorted((settings.data_dir / "ccp" / "photos").glob("*.jpg"))[:2]
    photos += sorted((settings.data_dir / "clothing-small" / "validation").rglob("*.jpg"))[:2]
    return [p.read_bytes() for p in photos]


def release_command(settings: Settings, args: argparse.Namespace) -> int:
    from training import release

    root = settings.release_dir
    if args.action == "verify":
        kinds = [k for k in ("classifier", "detector", "outfits") if (root / k / release.RELEASE_JSON).is_file()]
        if not kinds:
            raise release.ReleaseError(f"{root}: no released model")
        for kind in kinds:
            print(f"{release.verify_release(root, kind)}: ok")
        return 0
    if args.action == "install":
        if not install_releases(settings):
            raise release.ReleaseError(f"{root}: no released model")
        return 0
    return _make_release(settings, args)


def _make_release(settings: Settings, args: argparse.Namespace) -> int:
    from training import release

    if args.kind == "outfits":
        from app.outfits import release_outfits_command

        return release_outfits_command(settings, args)
    if not args.kind or not args.recipe:
        raise UsageError("eyepic release make needs a kind (classifier|detector|outfits) and --recipe")
    name = settings.classifier_name if args.kind == "classifier" else settings.detector_name
    version_dir = Path(args.export) if args.export else latest_version_dir(settings.model_dir, name)
    root = settings.release_dir
    folder = release.make_release(version_dir, root, Path(args.recipe),
                                  run_dir=Path(args.run) if args.run else None, commit=args.commit or "")
    commands = {}
    for entry in args.command or []:
        data, _, command = entry.partition("=")
        commands[data] = command
    release.add_evaluations(folder, release.collect_evaluations(version_dir), commands)
    release.write_card(folder, Path(args.notes).read_text() if args.notes else "")
    release.write_checksums(root)
    print(f"released {version_dir} as {folder}; checksums in {root / release.CHECKSUMS}")
    return 0


def add_release_parser(sub: argparse._SubParsersAction) -> None:
    rel = sub.add_parser("release", help="the released models in EYEPIC_RELEASE_DIR (default models/)")
    rel.add_argument("action", choices=["verify", "install", "make"])
    rel.add_argument("kind", nargs="?", choices=["classifier", "detector", "outfits"], help="make: which model "
                     "(outfits: from var/outfits/outfits.npz or --export, evaluated on CCP validation)")
    rel.add_argument("--export", help="make: the export folder to release (default: the latest)")
    rel.add_argument("--recipe", help="make: the recipe YAML it was trained with")
    rel.add_argument("--run", help="make: its training run folder (training curves)")
    rel.add_argument("--commit", help="make: the commit whose code trained it (default: recorded by the "
                     "training run, else the export's)")
    rel.add_argument("--notes", help="make: markdown added to the model card (latency, limits)")
    rel.add_argument("--command", action="append", metavar="DATA=COMMAND",
                     help="make: the command behind an evaluation report, for the card")
    rel.set_defaults(func=release_command)
