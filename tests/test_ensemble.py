"""GarmentEnsemble: averaged heads, a unit embedding whose cosine is the
members' mean, one export that serves it, and a rebuild from that export."""

import json

import numpy as np
import pytest
import tensorflow as tf

from eyepic import taxonomy
from eyepic.imaging import decode_and_resize
from serving.model_client import InProcessModelClient
from training.models.classifier import GarmentClassifier, average_with_mirror
from training.models.ensemble import GarmentEnsemble, ensemble_of, ensemble_training
from training.models.rebuild import rebuild_model
from training.predictions import encode_sample, pooled_features

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CONFIG = dict(num_groups=7, num_types=len(taxonomy.TYPE_NAMES), num_colors=10, input_size=32, width=8, embedding_dim=16)


@pytest.fixture(scope="module")
def members():
    import keras

    out = []
    for seed in (1, 2, 3):
        keras.utils.set_random_seed(seed)
        out.append(GarmentClassifier(**CONFIG))
    return out


def test_ensemble_averages_heads_and_its_embedding_cosine_is_the_members_mean(members):
    ensemble = ensemble_of(members)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    outs = [{k: np.asarray(v) for k, v in m(x, training=False).items()} for m in members]
    got = {k: np.asarray(v) for k, v in ensemble(x, training=False).items()}
    for head in ("group_probs", "type_probs", "color_probs"):
        np.testing.assert_allclose(got[head], np.mean([o[head] for o in outs], axis=0), atol=1e-6)
    emb = got["embedding"]
    assert emb.shape == (4, 48)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    mean_cos = np.mean([o["embedding"] @ o["embedding"].T for o in outs], axis=0)
    np.testing.assert_allclose(emb @ emb.T, mean_cos, atol=1e-5)


def test_ensemble_copies_weights_and_round_trips_its_config(members):
    ensemble = ensemble_of(members[:2])
    again = GarmentEnsemble.from_config(json.loads(json.dumps(ensemble.get_config())))
    again.set_weights(ensemble.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for key, value in ensemble(x, training=False).items():
        np.testing.assert_allclose(again(x, training=False)[key], value, atol=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        GarmentEnsemble([members[0].get_config()])
    with pytest.raises(ValueError, match="disagree"):
        GarmentEnsemble([members[0].get_config(), {**members[0].get_config(), "input_size": 48}])


def test_ensemble_export_serves_the_ensemble_and_rebuilds(members, tiny_samples, tmp_path):
    from training.export import export_classifier

    ensemble = ensemble_of(members[:2])
    version_dir = export_classifier(ensemble, tmp_path, "classifier", test_time_flip=True)
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert meta["embedding_dim"] == 32 and len(meta["model_config"]["members"]) == 2
    images = [encode_sample(s) for s in tiny_samples[:2] + tiny_samples[-2:]]
    served = InProcessModelClient(tmp_path).predict("classifier", images)
    pixels = tf.stack([decode_and_resize(tf.constant(b), 32) for b in images])
    direct = average_with_mirror(ensemble(pixels, training=False),
                                 ensemble(tf.reverse(pixels, axis=[2]), training=False))
    for key in ("embedding", "group_probs", "type_probs", "color_probs"):
        np.testing.assert_allclose(served[key], np.asarray(direct[key]), atol=1e-5)
    rebuilt = rebuild_model(version_dir)
    assert isinstance(rebuilt, GarmentEnsemble)
    pooled, emb = pooled_features(rebuilt, tiny_samples[:2] + tiny_samples[-2:], test_time_flip=True)
    assert pooled.shape == (4, 2 * 64)  # both members' pooled features
    np.testing.assert_allclose(emb, served["embedding"], atol=1e-5)


def test_ensemble_training_record_requires_one_calibration_hold_out(tmp_path):
    infos = [{"recipe": {"calibration_fraction": 0.15}, "history": {"val_type_probs_accuracy": [0.5, 0.6]}},
             {"recipe": {"calibration_fraction": 0.15}, "history": {"val_type_probs_accuracy": [0.7]}}]
    record = ensemble_training([tmp_path / "a", tmp_path / "b"], infos)
    assert record["recipe"] == {"calibration_fraction": 0.15}
    assert [m["best_validation_type_accuracy"] for m in record["ensemble"]] == [0.6, 0.7]
    assert all("history" not in m for m in record["ensemble"])
    infos[1]["recipe"]["calibration_fraction"] = 0.0
    with pytest.raises(ValueError, match="different calibration"):
        ensemble_training([tmp_path / "a", tmp_path / "b"], infos)
