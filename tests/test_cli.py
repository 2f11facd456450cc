"""The CLI's contract: one-line messages and a non-zero exit for bad input, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env_extra: dict | None = None, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "EYEPIC_VAR_DIR": str(tmp_path / "var"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_stage(tmp_path):
    out = run_cli("--help", tmp_path=tmp_path)
    assert out.returncode == 0
    for command in ("data", "train", "evaluate", "export", "calibrate", "crawl", "index", "serve", "demo", "release"):
        assert command in out.stdout


@pytest.mark.parametrize(
    "args,env,message",
    [
        (("index", "does/not/exist"), {}, "not a folder of images or a .jsonl manifest"),
        (("evaluate", "classifier"), {}, "no exported 'classifier' model"),
        (("export", "classifier"), {}, "no exported 'classifier' model"),
        (("calibrate", "classifier"), {}, "no exported 'classifier' model"),
        (("export", "classifier", "--from-run", "no/such/run"), {}, "not a finished training run"),
        (("export", "classifier", "--from-run", "var", "--from-run", "no/such/run"), {}, "not a finished training run"),
        (("release", "install"), {"EYEPIC_RELEASE_DIR": "no/such/dir"}, "no released model"),
        (("release", "make"), {}, "needs a kind"),
        (("serve",), {"EYEPIC_PORT": "http"}, "EYEPIC_PORT"),
        (("serve",), {"EYEPIC_INDEX": "mongo"}, "EYEPIC_INDEX"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, env, message, tmp_path):
    out = run_cli(*args, env_extra={"EYEPIC_MODEL_DIR": str(tmp_path / "models"), **env}, tmp_path=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_bad_manifest_lines_are_all_reported_with_line_numbers(tmp_path, data_dir):
    photo = next((data_dir / "clothing-small" / "validation" / "skirt").glob("*.jpg"))
    manifest = tmp_path / "catalog.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"id": "ok", "image": str(photo)}),
        "{not json",
        json.dumps({"id": "ok", "image": str(photo)}),  # duplicate id
        json.dumps({"id": "x", "image": "missing.jpg"}),
        json.dumps({"id": "y", "image": str(photo), "type": "poncho"}),
    ]) + "\n")
    out = run_cli("index", str(manifest), env_extra={"EYEPIC_MODEL_DIR": str(tmp_path)}, tmp_path=tmp_path)
    assert out.returncode == 2
    for line in (2, 3, 4, 5):
        assert f"catalog.jsonl:{line}:" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "var" / "index").exists() or not any((tmp_path / "var" / "index").iterdir())


def test_index_is_resumable_and_skips_bad_images(tmp_path, tiny_model_dir, data_dir):
    photos = sorted((data_dir / "clothing-small" / "validation" / "shorts").glob("*.jpg"))[:6]
    (tmp_path / "broken.jpg").write_bytes(photos[0].read_bytes()[:500])
    lines = [json.dumps({"id": f"s{i}", "image": str(p), "title": f"shorts {i}"}) for i, p in enumerate(photos)]
    lines.append(json.dumps({"id": "broken", "image": "broken.jpg"}))
    manifest = tmp_path / "catalog.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    env = {"EYEPIC_MODEL_DIR": str(tiny_model_dir)}
    first = run_cli("index", str(manifest), env_extra=env, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "6 indexed, 0 already indexed, 1 failed; index holds 6" in first.stdout
    assert "broken" in first.stderr
    second = run_cli("index", str(manifest), env_extra=env, tmp_path=tmp_path)
    assert "0 indexed, 6 already indexed" in second.stdout


@pytest.mark.parametrize(("model", "what"), [("classifier", "recipe"), ("detector", "detector config")])
def test_a_typo_in_a_recipe_is_named_before_training(model, what, tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("epoch: 3\nbatch_size: 8\n")
    out = run_cli("train", model, "--config", str(recipe), tmp_path=tmp_path)
    assert out.returncode == 2
    assert f"unknown {what} keys ['epoch']" in out.stderr and "Traceback" not in out.stderr
