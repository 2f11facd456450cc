"""GarmentEnsemble: several GarmentClassifiers served as one model.

Why: independently trained members make different mistakes; averaging their
head probabilities is the most reliable accuracy gain left when a single
from-scratch network has stopped improving with more epochs (see
docs/experiments/README.md). It costs one forward pass per member.

Outputs keep the single model's names and meaning, so export, serving, the
Analyzer and the index need no change:

* ``<head>_probs``: the mean of the members' probabilities;
* ``embedding``: the members' unit embeddings side by side, scaled by
  1/sqrt(n), so it is a unit vector and its cosine similarity is the mean of
  the members' similarities (the index reads the larger width from
  ``metadata.json``);
* ``pooled_output`` (a symbolic tensor, not an output): the members' pooled
  features side by side, for the evaluation's pooled-feature baseline.

Members must share input size and class lists; ``get_config`` holds every
member's config, so the export's ``model_config`` rebuilds it.
"""

from __future__ import annotations

import keras
from keras import layers

from eyepic.exports import CLASSIFIER_HEADS
from training.errors import TrainingInputError
from training.models.classifier import GarmentClassifier

HEAD_OUTPUTS = CLASSIFIER_HEADS


@keras.saving.register_keras_serializable(package="eyepic")
class GarmentEnsemble(keras.Model):
    def __init__(self, members: list[dict], **kwargs):
        if len(members) < 2:
            raise TrainingInputError(f"an ensemble needs at least two members, got {len(members)}")
        built = [GarmentClassifier.from_config({**cfg, "name": f"member_{i}"}) for i, cfg in enumerate(members)]
        sizes = {m.input_size for m in built}
        classes = {(m.num_groups, m.num_types, m.num_colors) for m in built}
        if len(sizes) > 1 or len(classes) > 1:
            raise TrainingInputError(f"ensemble members disagree on input size {sorted(sizes)} or class counts")
        inputs = keras.Input((built[0].input_size, built[0].input_size, 3), name="image")
        outs = [m(inputs) for m in built]
        pooled = [keras.Model(m.input, m.pooled_output, name=f"member_{i}_pool")(inputs)
                  for i, m in enumerate(built)]
        n = len(built)
        outputs = {"embedding": layers.Rescaling(n ** -0.5, name="embedding")(
            layers.Concatenate(name="embeddings")([o["embedding"] for o in outs]))}
        for head in HEAD_OUTPUTS:
            outputs[head] = layers.Average(name=head)([o[head] for o in outs])
        pool = layers.Concatenate(name="pool")(pooled)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.pooled_output = pool
        self.members = built
        self.member_configs = [m.get_config() for m in built]
        self.input_size = built[0].input_size

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "members": self.member_configs}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def ensemble_of(models: list) -> GarmentEnsemble:
    """An ensemble holding trained GarmentClassifiers' weights (copied, not shared)."""
    ensemble = GarmentEnsemble([m.get_config() for m in models])
    for member, model in zip(ensemble.members, models):
        member.set_weights(model.get_weights())
    return ensemble


def model_from_config(config: dict):
    """A GarmentClassifier or GarmentEnsemble from an export's ``model_config``."""
    return GarmentEnsemble.from_config(config) if "members" in config else GarmentClassifier.from_config(config)


def ensemble_training(runs: list, infos: list[dict]) -> dict:
    """The ``training`` record of an ensemble export: each member's run, and
    the calibration hold-out they share (``training.calibrate`` reads it).

    Members that held out different calibration photos are refused: some
    member would have trained on the crops the color fusion is calibrated on.
    """
    fractions = {float(info.get("recipe", {}).get("calibration_fraction", 0.0)) for info in infos}
    if len(fractions) > 1:
        raise TrainingInputError(f"ensemble members held out different calibration fractions {sorted(fractions)}: "
                         "train them with the same calibration_fraction")
    members = [{"run": str(run), **{k: v for k, v in info.items() if k != "history"},
                "best_validation_type_accuracy": max(info.get("history", {}).get("val_type_probs_accuracy", [0.0]))}
               for run, info in zip(runs, infos)]
    return {"ensemble": members, "recipe": {"calibration_fraction": fractions.pop()}}
