"""Two-stage transfer: which backbone layers train (the heads first, then the top of the backbone).

BatchNormalization layers stay in inference mode: their ImageNet statistics
are worth more than estimates from 16-image batches.
"""

from __future__ import annotations

from training.errors import TrainingInputError


def backbone_layers(model) -> list:
    """The backbone's layers in order: a nested application model's, or the
    compact net's (everything between the input and the pooling layer)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        return list(nested[0].layers)
    names = [layer.name for layer in model.layers]
    return [layer for layer in model.layers[1:names.index("pool")]
            if not isinstance(layer, keras.layers.InputLayer)]


def set_backbone_trainable(model, unfreeze_from: str | None, frozen: bool) -> list[str]:
    """Freeze the whole backbone (``frozen``) or unfreeze it from the first
    layer whose name starts with ``unfreeze_from``; BatchNormalization stays
    frozen (inference mode). Returns the names of the trainable backbone layers."""
    import keras

    layers = backbone_layers(model)
    for layer in [layer for layer in model.layers if isinstance(layer, keras.Model)]:
        layer.trainable = True  # a nested model's flag would override its layers'
    start = 0
    if unfreeze_from:
        starts = [i for i, layer in enumerate(layers) if layer.name.startswith(unfreeze_from)]
        if not starts:
            raise TrainingInputError(f"unfreeze_from={unfreeze_from!r}: no backbone layer has that name prefix")
        start = starts[0]
    trainable = []
    for i, layer in enumerate(layers):
        layer.trainable = (not frozen and i >= start
                           and not isinstance(layer, keras.layers.BatchNormalization))
        if layer.trainable and layer.weights:
            trainable.append(layer.name)
    return trainable
