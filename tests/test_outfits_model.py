"""The compatibility model: file round trip, training on worn outfits, behaviour, MMR."""

from __future__ import annotations

import numpy as np
import pytest

from eyepic.compatibility import ModelFileError, read_weights, write_weights
from outfits.diversify import mmr
from outfits.model import CompatibilityModel
from training.data.outfits import WornGarments
from training.evaluate_outfits import (
    Question,
    auc,
    evaluate,
    fitb_accuracy,
    fitb_credits,
    fitb_questions,
    paired_gain,
)
from training.train_outfits import OutfitRecipe, select_and_train, train_weights

from outfit_fakes import tiny_compatibility

SETTING = {"rank": 8, "l2": 0.003, "attribute_scale": 0.5, "w_bilinear": 1.0, "w_prior": 0.5}


def synthetic_outfits(photos: int = 120, dim: int = 16, seed: int = 0, split: str = "train") -> WornGarments:
    """Photos of a top and a bottom (and shoes every third photo): red tops are worn with blue
    bottoms, white tops with black bottoms; each color has its own region of embedding space."""
    fixed = np.random.default_rng(0)  # one region per color, whatever the photos' seed
    centers = {c: fixed.normal(size=dim) for c in ("red", "white", "blue", "black", "brown")}
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(photos):
        top, bottom = ("red", "blue") if p % 2 else ("white", "black")
        garments = [("top", "t-shirt", top), ("bottom", "jeans" if p % 2 else "skirt", bottom)]
        if p % 3 == 0:
            garments.append(("shoes", "shoes", "brown"))
        for group, kind, color in garments:
            v = centers[color] + 0.3 * rng.normal(size=dim)
            rows.append((f"{split}-{p:04d}", split, group, kind, color, v / np.linalg.norm(v)))
    return WornGarments(*(np.asarray([r[i] for r in rows]) for i in range(5)),
                        embedding=np.stack([r[5] for r in rows]).astype(np.float32))


def trained(worn: WornGarments, setting: dict = SETTING) -> CompatibilityModel:
    return CompatibilityModel.from_arrays(*train_weights(worn, setting, OutfitRecipe(steps=150)))


def test_save_load_round_trip_gives_the_same_scores(tmp_path):
    model = trained(synthetic_outfits())
    model.info = {"commit": "abc"}
    loaded = CompatibilityModel.load(model.save(tmp_path / "outfits.npz"))
    worn = synthetic_outfits(10, seed=1)
    bottoms = worn.group == "bottom"
    args = ("top", worn.embedding[0], "t-shirt", "red", "bottom", worn.embedding[bottoms], list(worn.type[bottoms]),
            list(worn.color[bottoms]))
    np.testing.assert_allclose(model.score(*args), loaded.score(*args), rtol=1e-6)
    np.testing.assert_allclose(model.query_vector("top", worn.embedding[0], "t-shirt", "red", "bottom"),
                               loaded.query_vector("top", worn.embedding[0], "t-shirt", "red", "bottom"))
    assert loaded.info == {"commit": "abc"} and set(loaded.pairs) == set(model.pairs)
    assert (loaded.rank, loaded.w_prior, loaded.attribute_scale) == (8, 0.5, 0.5)


def test_a_file_of_another_shape_or_kind_is_refused(tmp_path):
    header, pairs = read_weights(tiny_compatibility().save(tmp_path / "ok.npz"))
    header["rank"] = 5
    with pytest.raises(ModelFileError, match="wrong shape"):
        CompatibilityModel.load(write_weights(tmp_path / "bad.npz", header, pairs))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a compatibility model"):
        CompatibilityModel.load(tmp_path / "junk.npz")


def test_it_learns_which_colors_are_worn_together():
    """Direction: trained on red-with-blue and white-with-black outfits, a red top prefers blue bottoms
    (and a white top black ones), from either side of the pair, and says why."""
    model = trained(synthetic_outfits())
    test = synthetic_outfits(20, seed=3)
    blue, black = (np.flatnonzero((test.group == "bottom") & (test.color == c))[0] for c in ("blue", "black"))
    red_top = np.flatnonzero((test.group == "top") & (test.color == "red"))[0]
    white_top = np.flatnonzero((test.group == "top") & (test.color == "white"))[0]
    candidates = np.asarray([blue, black])

    def scores(top: int) -> np.ndarray:
        return model.score("top", test.embedding[top], str(test.type[top]), str(test.color[top]), "bottom",
                           test.embedding[candidates], list(test.type[candidates]), list(test.color[candidates]))

    assert scores(red_top)[0] > scores(red_top)[1]
    assert scores(white_top)[1] > scores(white_top)[0]
    back = model.score("bottom", test.embedding[blue], "jeans", "blue", "top", test.embedding[[red_top, white_top]],
                       ["t-shirt", "t-shirt"], ["red", "white"])
    assert back[0] > back[1]
    assert model.reason("top", "t-shirt", "red", "bottom", "jeans", "blue") == \
        "red t-shirts are often worn with blue jeans"
    # the projection alone (no attributes, no prior) also maps a red top nearest to the blue bottoms
    visual = trained(synthetic_outfits(), {**SETTING, "attribute_scale": 0.0, "w_prior": 0.0})
    q = visual.query_vector("top", test.embedding[red_top], "", "", "bottom")
    assert q @ test.embedding[blue] > q @ test.embedding[black]


def test_scores_do_not_depend_on_candidate_order():
    model = tiny_compatibility()
    rng = np.random.default_rng(1)
    e = rng.normal(size=(5, 16)).astype(np.float32)
    kinds, colors = ["jeans", "skirt", "pants", "shorts", "jeans"], ["blue", "black", "white", "red", "gray"]
    s = model.score("top", e[0], "shirt", "black", "bottom", e, kinds, colors)
    order = [4, 2, 0, 3, 1]
    t = model.score("top", e[0], "shirt", "black", "bottom", e[order], [kinds[i] for i in order],
                    [colors[i] for i in order])
    np.testing.assert_allclose(s[order], t, rtol=1e-6)


def test_fitb_on_synthetic_validation_beats_chance_and_the_search_picks_a_setting():
    train = synthetic_outfits(160)
    (header, pairs), best, trials = select_and_train(
        train, OutfitRecipe(steps=100, grid={"rank": [8], "l2": [0.003], "attribute_scale": [0.0, 0.5],
                                             "w_prior": [0.0, 0.5], "prior_only": True}),
        CompatibilityModel.from_arrays, log=lambda _: None)
    assert len(trials) == 5 and best["inner_fitb"] == max(t["inner_fitb"] for t in trials)
    result = evaluate(CompatibilityModel.from_arrays(header, pairs), synthetic_outfits(60, seed=5, split="validation"))
    # half the distractors share the answer's colors (two kinds of outfit): 0.47 is the best expected
    assert result["fitb"] > 0.4 and result["fitb"] > result["baselines"]["visual_similarity"] + 0.1
    assert result["outfit_auc"] > 0.6, result  # half the random outfits are a worn kind too
    assert result["baselines"]["random"] == 0.25 and set(result["per_pair"]) >= {"top|bottom"}


def test_fitb_questions_use_distractors_of_the_same_group_from_other_photos():
    worn = synthetic_outfits(30, split="validation")
    questions = fitb_questions(worn, tiny_compatibility(), seed=15)
    assert questions
    for q in questions:
        assert len(q.candidates) == 4 and len(set(q.candidates)) == 4
        assert len(set(worn.group[q.candidates])) == 1
        assert worn.photo[q.candidates[0]] not in set(worn.photo[q.candidates[1:]])
    assert [list(q.candidates) for q in questions] == [list(q.candidates) for q in
                                                        fitb_questions(worn, tiny_compatibility(), seed=15)]


def test_auc_counts_ties_half():
    assert auc(np.asarray([2.0, 3.0]), np.asarray([1.0, 1.0])) == 1.0
    assert auc(np.asarray([1.0]), np.asarray([1.0])) == 0.5


def test_fitb_credits_give_each_question_its_credit_and_ties_share_it():
    questions = [Question(np.asarray([0]), np.asarray([1, 2, 3, 4]), "bottom", None) for _ in range(3)]
    answers = iter([np.asarray([0.9, 0.1, 0.2, 0.3]), np.asarray([0.1, 0.9, 0.2, 0.3]), np.ones(4)])
    credits = fitb_credits(questions, lambda rest, candidates: next(answers))
    np.testing.assert_allclose(credits, [1.0, 0.0, 0.25])
    assert fitb_accuracy(questions, lambda rest, candidates: np.asarray([1.0, 0, 0, 0])) == 1.0


def test_paired_gain_averages_a_questions_draws_before_its_standard_error():
    assert paired_gain(np.ones(6), np.ones(6), draws=3) == (0.0, 0.0)
    gain, se = paired_gain(np.asarray([1.0, 1, 0, 0]), np.asarray([0.0, 1, 0, 0]))
    assert gain == 0.25 and np.isclose(se, 0.25)  # std (ddof 1) of [1, 0, 0, 0] over sqrt(4)
    # two draws of two questions: question 0 gains 0.5 on average, question 1 nothing
    gain, se = paired_gain(np.asarray([1.0, 0, 0, 0]), np.asarray([0.0, 0, 0, 0]), draws=2)
    assert gain == 0.25 and np.isclose(se, 0.25)
    assert paired_gain(np.asarray([0.0, 1.0]), np.asarray([1.0, 1.0]), draws=2) == (-0.5, 0.0)


def test_mmr_trades_a_near_duplicate_for_variety():
    v = np.asarray([[1, 0], [0.999, 0.04], [0, 1]], np.float32)
    scores = np.asarray([1.0, 0.95, 0.7])
    assert mmr(scores, v, 2, diversity=0.0) == [0, 1]
    assert mmr(scores, v, 2, diversity=0.5) == [0, 2]
    assert mmr(scores, v, 5, diversity=0.5) == [0, 2, 1]  # at most all of them
    assert mmr(np.zeros(0), np.zeros((0, 2)), 3, 0.3) == []


def test_views_identical_to_the_garments_train_the_same_model_and_other_views_change_it():
    """The augmentation hook draws one view per garment each step: views equal to the garments' own
    features are the plain fit; noisy views give another fit that still learns the colours."""
    worn = synthetic_outfits()
    setting = {**SETTING, "attribute_scale": 0.0, "w_prior": 0.0}
    plain = train_weights(worn, setting, OutfitRecipe(steps=150))[1]
    same = train_weights(worn, setting, OutfitRecipe(steps=150), views=np.stack([worn.embedding] * 3))[1]
    rng = np.random.default_rng(1)
    noisy_views = worn.embedding[None] + 0.2 * rng.normal(size=(3, *worn.embedding.shape)).astype(np.float32)
    noisy = train_weights(worn, setting, OutfitRecipe(steps=150), views=noisy_views)
    for key in plain:
        np.testing.assert_allclose(plain[key]["a"], same[key]["a"], rtol=1e-5, atol=1e-6)
        assert not np.allclose(plain[key]["a"], noisy[1][key]["a"])
    model = CompatibilityModel.from_arrays(*noisy)
    test = synthetic_outfits(20, seed=3)
    red_top = np.flatnonzero((test.group == "top") & (test.color == "red"))[0]
    blue, black = (np.flatnonzero((test.group == "bottom") & (test.color == c))[0] for c in ("blue", "black"))
    q = model.query_vector("top", test.embedding[red_top], "", "", "bottom")
    assert q @ test.embedding[blue] > q @ test.embedding[black]


def test_a_jittered_box_stays_in_the_photo_and_on_its_garment():
    from training.data.outfits import jitter_box

    rng = np.random.default_rng(0)
    box = (0.3, 0.2, 0.7, 0.6)
    boxes = [jitter_box(box, rng, 0.08, 0.15) for _ in range(200)]
    assert all(0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in boxes)
    assert len(set(boxes)) == 200  # each draw differs
    centers = np.asarray([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes])
    assert np.abs(centers - 0.5 + np.asarray([0.0, 0.1])).max() <= 0.08 * 0.4 + 1e-9
    edge = jitter_box((0.9, 0.9, 1.0, 1.0), rng, 0.5, 0.5)  # clipped at the photo's edge
    assert edge[2] <= 1 and edge[3] <= 1
