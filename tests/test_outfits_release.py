"""The released compatibility model (models/outfits/): verified, fits the released classifier,
and reproduces its card's validation numbers through ``eyepic evaluate outfits --json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli import main
from eyepic.compatibility import model_pairs
from outfits.model import CompatibilityModel
from training import release

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "models" / "outfits"


def test_the_released_compatibility_model_verifies_and_fits_the_released_classifier():
    release.verify_release(REPO / "models", "outfits")
    stated = json.loads((FOLDER / release.RELEASE_JSON).read_text())
    model = CompatibilityModel.load(FOLDER / "outfits.npz")
    classifier = json.loads((REPO / "models" / "classifier" / release.RELEASE_JSON).read_text())
    assert model.embedding_dim == classifier["model_config"]["embedding_dim"]
    assert set(model.pairs) == set(model_pairs())
    assert stated["weights_sha256"] == release.sha256(FOLDER / "outfits.npz")
    assert stated["data_hash"] == model.info["data_fingerprint"]
    validation = stated["evaluations"]["validation"]
    assert validation["command"] == "eyepic evaluate outfits --json"
    assert f"**{validation['fitb']:.3f}**" in (FOLDER / release.CARD).read_text()
    assert validation["fitb"] > validation["baselines"]["visual_similarity"]


def test_release_verify_covers_the_compatibility_model(tmp_path, monkeypatch, capsys):
    root = tmp_path / "models"
    shutil.copytree(REPO / "models", root)
    monkeypatch.setenv("EYEPIC_RELEASE_DIR", str(root))
    assert main(["release", "verify"]) == 0
    assert "models/outfits: ok" in capsys.readouterr().out
    weights = root / "outfits" / "outfits.npz"
    weights.write_bytes(b"\0" + weights.read_bytes()[1:])
    assert main(["release", "verify"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(weights) in err and "checksum mismatch" in err


@pytest.mark.slow
def test_released_compatibility_model_reproduces_its_card(data_dir, tmp_path, monkeypatch, capsys):
    """The released classifier describes the CCP validation garments; the released model's FITB,
    baselines and AUC come out as its card says (the last stdout line is one JSON object)."""
    stated = json.loads((FOLDER / release.RELEASE_JSON).read_text())["evaluations"]["validation"]
    release.install_release(REPO / "models", "classifier", tmp_path / "models", "classifier")
    for name, value in (("MODEL_DIR", tmp_path / "models"), ("VAR_DIR", tmp_path / "var"), ("DATA_DIR", data_dir),
                        ("RELEASE_DIR", REPO / "models")):
        monkeypatch.setenv(f"EYEPIC_{name}", str(value))
    assert main(["evaluate", "outfits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["fitb"] == pytest.approx(stated["fitb"], abs=0.01)
    assert result["baselines"]["visual_similarity"] == pytest.approx(stated["baselines"]["visual_similarity"],
                                                                     abs=0.01)
    assert result["outfit_auc"] == pytest.approx(stated["outfit_auc"], abs=0.01)
    assert (tmp_path / "var" / "reports" / "outfits" / "evaluation.md").is_file()
