"""``eyepic evaluate recommender`` on a small structured catalog, in seconds.

The command runs end to end (index -> simulated shoppers -> JSON, markdown
and PNG reports, ``--json`` on stdout's last line), and the simulation's
numbers have the direction they must: the taste model beats the
non-personalized list and a single-vector profile after 10 interactions,
never shows a disliked item again, never a product twice in one list.
"""

from __future__ import annotations

import json
import random

import pytest
from taste_catalog import synthetic_catalog

from app.cli import main
from app.recommender_sim import Behaviour, Shopper, candidate_modes, make_shopper, simulate
from eyepic.settings import Settings
from indexer.embedded import EmbeddedIndex


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate-recommender")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models")
    items = synthetic_catalog(per_combo=42, dim=16, seed=3)
    index = EmbeddedIndex(settings.index_dir / f"{settings.index_name}.sqlite")
    index.upsert(items)
    yield settings, index, items
    index.close()


def test_the_command_writes_reports_and_prints_json_last(small, monkeypatch, capsys):
    settings, _, _ = small
    monkeypatch.setenv("EYEPIC_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("EYEPIC_MODEL_DIR", str(settings.model_dir))
    assert main(["evaluate", "recommender", "--json", "--shoppers", "3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["systems"]) == {"baseline", "rocchio", "taste"}
    assert result["lift_at_10"] > 1 and result["seeds"] == [0, 1, 2]
    assert set(result["systems"]["taste"]["precision_at_12"]) == {"0", "3", "10", "20"}
    out = settings.reports_dir / "recommender"
    assert json.loads((out / "evaluation.json").read_text())["lift_at_10"] == result["lift_at_10"]
    assert "| taste |" in (out / "evaluation.md").read_text()
    assert (out / "evaluation.png").read_bytes()[:4] == b"\x89PNG"


def test_the_taste_model_beats_both_references_and_keeps_its_promises(small):
    settings, index, items = small
    result = simulate(items, index, settings, seeds=(7,), shoppers=12)
    taste, base, rocchio = (result["systems"][s] for s in ("taste", "baseline", "rocchio"))
    assert taste["precision_at_12"]["10"] >= 2 * base["precision_at_12"]["10"]
    assert taste["precision_at_12"]["10"] > rocchio["precision_at_12"]["10"]
    assert all(taste["precision_at_12"][c] >= base["precision_at_12"][c] for c in ("0", "3", "10", "20"))
    assert taste["disliked_shown"] == 0 and taste["lists_with_duplicates"] == 0
    assert taste["modes_hit_top24_after_20"] >= 0.8


def test_shoppers_modes_exist_and_their_dislikes_never_empty_a_mode(small):
    _, _, items = small
    modes = candidate_modes(items, Behaviour().min_mode_products)
    assert modes
    rng = random.Random(1)
    for n in range(50):
        shopper: Shopper = make_shopper(f"s{n}", modes, rng)
        assert 1 <= len(shopper.modes) <= 3 and shopper.disliked
        for mode in shopper.modes:
            assert sum(shopper.matches(i, mode) and not shopper.dislikes(i) for i in items) >= 40


def test_a_catalog_too_small_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    settings = Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "models")
    index = EmbeddedIndex(settings.index_dir / f"{settings.index_name}.sqlite")
    index.upsert(synthetic_catalog(per_combo=2, dim=8))
    index.close()
    monkeypatch.setenv("EYEPIC_VAR_DIR", str(settings.var_dir))
    assert main(["evaluate", "recommender", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eyepic: no type or group with a color has 40 products") and "\n" not in err


@pytest.mark.parametrize("seeds", ["100", "1,abc", ","])
def test_report_seeds_refuse_tuning_seeds_and_garbage(seeds, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EYEPIC_VAR_DIR", str(tmp_path))  # refused before any index is opened
    assert main(["evaluate", "recommender", "--json", "--seeds", seeds]) == 2
    assert capsys.readouterr().err.startswith("eyepic: --seeds")
