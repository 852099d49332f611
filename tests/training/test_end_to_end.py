"""Load -> split -> train -> evaluate -> export -> ONNX parity on tiny synthetic HAM10000-layout data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import LABELS
from training.data import load_dataset
from training.split import make_split

tf = pytest.importorskip("tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["full", "cached"])
def test_end_to_end_tiny(ham_tiny, tmp_path, shared, strategy):
    from training.config import get_preset
    from training.evaluate import evaluate
    from training.export import export
    from training.paths import default_weights
    from training.train import train

    weights = default_weights(0.35)
    ds = load_dataset(ham_tiny / "HAM10000_metadata.csv")
    split = make_split(ds, seed=1)
    assert split.shared_lesions() == {}
    cfg = get_preset("default").replace(
        alpha=0.35,
        image_size=96,
        batch_size=16,
        head_epochs=1,
        finetune_epochs=1,
        strategy=strategy,
        early_stopping_patience=0,
    )
    cfg = cfg.replace(finetune_after="block_15")
    run = tmp_path / "run"
    info = train(cfg, ds, split, weights, run, cache_dir=tmp_path / "cache", run_eagerly=True, verbose=0)
    for f in (
        "model.keras",
        "split.csv",
        "history_head.csv",
        "history_finetune.csv",
        "triage.json",
        "run.json",
    ):
        assert (run / f).exists(), f
    assert info["temperature"] > 0
    triage = json.loads((run / "triage.json").read_text())
    assert triage["validation"]["malignant_referral"]["sensitivity"] >= 0.95

    repo = tmp_path / "repo"
    result = export(run, repo, "tiny", "1", ds, n_parity=16)
    assert result["parity_max_abs_diff"] <= 1e-4
    model_dir = repo / "tiny"
    assert (model_dir / "labels.txt").read_text().split() == list(LABELS)
    assert (model_dir / "1" / "model.onnx").exists()
    assert "KIND_GPU" in (model_dir / "config.pbtxt").read_text()
    # the class-activation maps output by default (3x3 cells at 96x96), checked by the export itself
    cam = result["class_maps"]
    assert cam["class_maps_shape"] == [3, 3, 7] and cam["first_output_max_abs_diff"] <= 1e-5
    assert cam["softmax_of_mean_map_max_abs_diff"] <= 1e-5
    assert 'name: "class_maps"' in (model_dir / "config.pbtxt").read_text()

    # parity is meaningful: the trained model's outputs vary across real images
    from training.export import load_keras, onnx_predict, onnx_session, parity_images

    imgs = parity_images(ds, 16, 96)
    probs = onnx_predict(onnx_session(model_dir / "1" / "model.onnx"), imgs)
    assert probs.shape == (16, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert probs.std(axis=0).max() > 1e-3
    keras_probs = load_keras(run).predict(imgs, verbose=0)
    assert np.abs(probs - keras_probs).max() <= 1e-4
    # the backend loads it as shipped, with a dynamic batch dimension
    from backend.inference.onnx import OnnxClassifier

    clf = OnnxClassifier(repo, "tiny")
    preds = clf.predict_batch(imgs[:3])
    assert len(preds) == 3 and set(preds[0].probabilities) == set(LABELS)
    assert preds[0].class_map.shape == (3, 3)

    out = evaluate(
        model_dir,
        ds,
        split_file=run / "split.csv",
        subset="test",
        out=tmp_path / "report",
        n_boot=20,
        cache_dir=tmp_path / "cache",
        run_dir=run,
    )
    assert out["n"] == len(split.ids("test"))
    confusion = np.array(out["confusion_matrix"])
    assert confusion.sum() == out["n"]
    present = confusion.sum(axis=1) > 0  # recomputed from the confusion matrix, over the classes present
    recalls = confusion.diagonal()[present] / confusion.sum(axis=1)[present]
    assert out["metrics"]["balanced_accuracy"] == pytest.approx(recalls.mean(), abs=1e-9)
    for f in (
        "REPORT.md",
        "confusion_matrix.png",
        "roc_curves.png",
        "reliability_diagram.png",
        "training_curves.png",
        "metrics.json",
    ):
        assert (tmp_path / "report" / f).exists(), f


def test_tf_data_augmentation_keeps_uint8_and_labels(tmp_path):
    from training.config import get_preset
    from training.train import image_dataset

    cfg = get_preset("default").replace(batch_size=4)
    x = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    y = np.arange(8) % 7
    batches = list(image_dataset(x, y, cfg, training=True))
    imgs = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert imgs.dtype == np.uint8 and imgs.shape == x.shape
    assert sorted(labels.tolist()) == sorted(y.tolist())
    assert not np.array_equal(np.sort(imgs.reshape(8, -1), axis=0), np.sort(x.reshape(8, -1), axis=0))


def test_model_has_no_augmentation_and_takes_uint8(shared):
    import keras

    from training.config import get_preset
    from training.model import build_model, unfreeze
    from training.paths import default_weights

    cfg = get_preset("default").replace(alpha=0.35, image_size=96)
    model = build_model(cfg, default_weights(0.35))
    assert model.input.dtype == "uint8"
    assert not [layer for layer in model.layers if "Random" in type(layer).__name__]
    assert not model.get_layer("mobilenetv2").trainable
    n = unfreeze(model, "block_15")
    base = model.get_layer("mobilenetv2")
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert (
        n == len(trainable)
        and trainable
        and all(name.startswith(("block_16", "Conv_1")) for name in trainable)
    )
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in base.layers
    )


@pytest.mark.slow
def test_resume_skips_finished_phases(ham_tiny, tmp_path, shared):
    from training.config import get_preset
    from training.data import DatasetError
    from training.export import load_keras
    from training.paths import default_weights
    from training.train import train

    ds = load_dataset(ham_tiny)
    split = make_split(ds, seed=3)
    cfg = get_preset("default").replace(
        alpha=0.35, image_size=96, batch_size=16, head_epochs=2, finetune_epochs=1, cached_views=2
    )
    cfg = cfg.replace(finetune_after="block_15")
    run = tmp_path / "run"
    kw = {"cache_dir": tmp_path / "cache", "run_eagerly": True, "verbose": 0}
    first = train(cfg, ds, split, default_weights(0.35), run, **kw)
    assert (run / "head.done").exists() and (run / "finetune.done").exists()
    w1 = [w.copy() for w in load_keras(run).get_weights()]
    second = train(cfg, ds, split, default_weights(0.35), run, **kw)
    w2 = load_keras(run).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert second["temperature"] == pytest.approx(first["temperature"])
    with pytest.raises(DatasetError, match="another split"):
        train(cfg, ds, make_split(ds, seed=4), default_weights(0.35), run, **kw)
    with pytest.raises(DatasetError, match="another configuration"):
        train(cfg.replace(head_epochs=3), ds, split, default_weights(0.35), run, **kw)


@pytest.mark.slow
def test_paper_preset_trains_the_whole_network(ham_tiny, tmp_path, shared):
    import csv

    from training.config import get_preset
    from training.paths import default_weights
    from training.train import _schedule, train

    cfg = get_preset("paper")
    assert (cfg.batch_size, cfg.finetune_epochs, cfg.finetune_lr, cfg.lr_step_epochs) == (64, 20, 0.005, 6)
    assert cfg.class_weights == "none" and cfg.finetune_after is None and cfg.head_epochs == 0
    sched = _schedule(cfg, cfg.finetune_lr, cfg.finetune_epochs, steps_per_epoch=10)
    lrs = [float(sched(step)) for step in (0, 59, 60, 119, 120, 180)]
    assert lrs == pytest.approx([0.005, 0.005, 0.0025, 0.0025, 0.00125, 0.000625])
    tiny = cfg.replace(alpha=0.35, image_size=96, batch_size=16, finetune_epochs=1)
    ds = load_dataset(ham_tiny)
    run = tmp_path / "paper"
    train(
        tiny,
        ds,
        make_split(ds, seed=2),
        default_weights(0.35),
        run,
        cache_dir=tmp_path / "c",
        run_eagerly=True,
        verbose=0,
    )
    rows = list(csv.DictReader((run / "history_finetune.csv").open()))
    assert len(rows) == 1 and not (run / "history_head.csv").exists()
    assert (run / "model.keras").exists()
