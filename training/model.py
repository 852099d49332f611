"""MobileNetV2 classifier: uint8 RGB in, 7 probabilities out; the [-1, 1] scaling lives inside the model."""

from __future__ import annotations

from pathlib import Path

from training import LABELS
from training.config import CUT_LAYERS, TrainConfig
from training.data import DatasetError

BASE_NAME = "mobilenetv2"
# output channels of block_16_project for each alpha (make_divisible(320 * alpha, 8))
_PROJECT_16 = {112: 0.35, 160: 0.5, 240: 0.75, 320: 1.0, 416: 1.3, 448: 1.4}


def weights_alpha(path: Path) -> float:
    """Read the width multiplier a MobileNetV2 ``.h5`` weights file was made for (without TensorFlow)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"weights file {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            found: list[tuple[int, ...]] = []

            def visit(name, obj):
                if "kernel" in name and hasattr(obj, "shape") and not found:
                    found.append(tuple(obj.shape))

            if "Conv_1" in f:  # the last 1x1 conv: its input width is block_16_project's output
                f["Conv_1"].visititems(visit)
    except OSError as exc:
        raise DatasetError(f"{path} is not an HDF5 weights file: {exc}") from exc
    if not found:
        raise DatasetError(f"{path} has no MobileNetV2 Conv_1 kernel: not MobileNetV2 weights")
    channels = found[0][-2]
    if channels not in _PROJECT_16:
        raise DatasetError(f"{path}: unexpected Conv_1 input width {channels}")
    return _PROJECT_16[channels]


def check_weights(path: Path | None, alpha: float) -> None:
    """Fail fast (before any long work) when the weights are missing or for another alpha."""
    if path is None:
        return
    found = weights_alpha(path)
    if abs(found - alpha) > 1e-6:
        raise DatasetError(
            f"weights {Path(path).name} are for alpha {found}, but the model uses alpha {alpha}"
        )


def build_model(config: TrainConfig, weights: Path | str | None = None, n_classes: int = len(LABELS)):
    """Build the classifier. ``weights``: a local ImageNet ``.h5`` (no top), "imagenet" (download) or None.

    Layers: uint8 image -> Rescaling to [-1, 1] -> MobileNetV2 (frozen, BatchNorm in inference mode)
    -> global average pooling -> dropout -> dense softmax. Call :func:`unfreeze` for fine-tuning.
    """
    import keras

    if weights not in (None, "imagenet"):
        check_weights(Path(weights), config.alpha)
    size = config.image_size
    base = keras.applications.MobileNetV2(
        include_top=False, weights=None, alpha=config.alpha, input_shape=(size, size, 3), name=BASE_NAME
    )
    if weights == "imagenet":
        ref = keras.applications.MobileNetV2(
            include_top=False, weights="imagenet", alpha=config.alpha, input_shape=(size, size, 3)
        )
        base.set_weights(ref.get_weights())
    elif weights is not None:
        base.load_weights(str(weights))
    base.trainable = False
    image = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")(image)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout", seed=config.seed)(x)
    probs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(image, probs, name="ham10000_mobilenetv2")


def get_base(model):
    return model.get_layer(BASE_NAME)


def unfreeze(model, after: str | None) -> int:
    """Make the backbone trainable after the cut ``after`` (a key of ``CUT_LAYERS``; None: all of it).

    BatchNorm layers stay frozen (and run in inference mode, since the base is called with
    ``training=False``): fine-tuning them on small batches destroys the ImageNet statistics.
    Returns the number of trainable backbone layers. Recompile the model afterwards.
    """
    import keras

    base = get_base(model)
    base.trainable = True
    names = [layer.name for layer in base.layers]
    start = 0
    if after:
        cut = CUT_LAYERS[after]
        start = names.index(cut) + 1
    n = 0
    for i, layer in enumerate(base.layers):
        trainable = i >= start and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        n += int(trainable and bool(layer.weights))
    return n


def backbone_split(model, after: str):
    """Return ``(bottom, top)``: uint8 image -> activations at the cut, and cut activations -> probabilities.

    Both share layers (and so weights) with ``model``: training ``top`` trains ``model``.
    """
    import keras

    base = get_base(model)
    cut = base.get_layer(CUT_LAYERS[after]).output
    bottom_base = keras.Model(base.input, cut, name="backbone_bottom")
    top_base = keras.Model(cut, base.output, name="backbone_top")
    image = model.input
    x = model.get_layer("scale_to_pm1")(image)
    bottom = keras.Model(image, bottom_base(x, training=False), name="bottom")
    feat = keras.Input(tuple(cut.shape[1:]), name="cut_activations")
    y = top_base(feat, training=False)
    y = model.get_layer("pool")(y)
    y = model.get_layer("dropout")(y)
    y = model.get_layer("probabilities")(y)
    top = keras.Model(feat, y, name="top")
    return bottom, top


def head_model(model, feature_dim: int):
    """pooled features -> dropout -> dense: shares the head's layers with ``model``."""
    import keras

    feat = keras.Input((feature_dim,), name="pooled")
    y = model.get_layer("dropout")(feat)
    y = model.get_layer("probabilities")(y)
    return keras.Model(feat, y, name="head")


def bake_temperature(model, temperature: float) -> None:
    """Divide the logits by ``temperature`` inside the model (kernel and bias / T): calibrated outputs."""
    dense = model.get_layer("probabilities")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / temperature, bias / temperature])
