"""The earlier cut points of the v2 lever (issue 12): the split model equals the whole model there."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize(("cut", "first_trainable"), [("block_8", "block_9"), ("block_6", "block_7")])
def test_earlier_cut_splits_the_model_exactly(shared, cut, first_trainable):
    from training.config import get_preset
    from training.model import backbone_split, build_model, unfreeze
    from training.paths import default_weights

    cfg = get_preset("v2-block8").replace(alpha=0.35, image_size=96, finetune_after=cut)
    model = build_model(cfg, default_weights(0.35))
    bottom, top = backbone_split(model, cut)
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    acts = bottom(x, training=False).numpy()
    assert acts.shape[1:3] == (6, 6)  # the 14x14 stage at 224 input is 6x6 at 96
    np.testing.assert_allclose(top(acts, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)
    unfreeze(model, cut)
    base = model.get_layer("mobilenetv2")
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert trainable[0].startswith(first_trainable)
    assert not any(name.startswith(("block_1_", "block_5_")) for name in trainable)
