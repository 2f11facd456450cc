"""The classifier's losses and metric: label-smoothed and masked cross-entropy, supervised contrastive.

Keras is imported inside each builder, so importing this module stays cheap.
"""

from __future__ import annotations


def masked_accuracy_class():
    import keras

    from training.data.samples import IGNORE

    class MaskedAccuracy(keras.metrics.Mean):
        """Top-1 accuracy over the samples that have a label for this head."""

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
            hit = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1) == y_true, "float32")
            weight = keras.ops.cast(y_true != IGNORE, "float32")
            return super().update_state(hit, sample_weight=weight)

    return MaskedAccuracy


def smoothed_sparse_crossentropy(smoothing: float):
    """Cross-entropy of probabilities against integer labels smoothed by ``smoothing``.

    Keras 3's sparse loss has no label smoothing; this one-hot version is for
    heads whose every sample has a label (group, type).
    """
    from keras import ops

    def loss(y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        target = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), classes)
        target = target * (1.0 - smoothing) + smoothing / ops.cast(classes, y_pred.dtype)
        return -ops.sum(target * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)

    return loss


def supervised_contrastive_loss(temperature: float):
    """SupCon (Khosla et al., 2020) over in-batch (type, color) pairs.

    Positives of an anchor: other samples of its type whose colors agree (an
    unknown color agrees with any). Returns one loss per sample; anchors with
    no positive in the batch contribute 0. Pulls same type+color together in
    the embedding, which is what "more like this" ranks by.
    """
    from keras import ops

    from training.data.samples import PAIR_BASE

    def loss(y_true, y_pred):
        keys = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        types, colors = keys // PAIR_BASE, keys % PAIR_BASE
        same_type = ops.equal(types[:, None], types[None, :])
        color_ok = ops.logical_or(ops.equal(colors[:, None], colors[None, :]),
                                  ops.logical_or(ops.equal(colors[:, None], 0), ops.equal(colors[None, :], 0)))
        n = ops.shape(keys)[0]
        not_self = ops.logical_not(ops.cast(ops.eye(n), "bool"))
        positive = ops.cast(ops.logical_and(ops.logical_and(same_type, color_ok), not_self), "float32")
        logits = ops.matmul(y_pred, ops.transpose(y_pred)) / temperature
        logits = logits - ops.max(logits, axis=1, keepdims=True)
        exp = ops.exp(logits) * ops.cast(not_self, "float32")
        log_prob = logits - ops.log(ops.sum(exp, axis=1, keepdims=True) + 1e-9)
        count = ops.sum(positive, axis=1)
        mean_log_prob = ops.sum(positive * log_prob, axis=1) / ops.maximum(count, 1.0)
        return -mean_log_prob * ops.cast(count > 0, "float32")

    return loss
