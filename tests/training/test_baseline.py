"""The SVM baseline (hand-crafted colour and texture features): fitted on a split's train part, it must
tell the classes of held-out images apart better than chance (the synthetic classes differ in colour
and texture, which is what its features measure)."""

from __future__ import annotations

import numpy as np

from training import LABELS
from training.baseline import fit_svm, handcrafted_features, svm_scores
from training.cache import cached_images
from training.data import load_dataset
from training.metrics import point_metrics
from training.split import make_split


def test_svm_baseline_beats_chance_on_held_out_images(ham_tiny, tmp_path):
    ds = load_dataset(ham_tiny / "HAM10000_metadata.csv")
    split = make_split(ds, seed=1)
    train, held_out = ds.subset(split.ids("train")), ds.subset(split.ids("val") + split.ids("test"))
    x_train = handcrafted_features(cached_images(train.records, 96, tmp_path))
    x_test = handcrafted_features(cached_images(held_out.records, 96, tmp_path))
    assert x_train.shape == (len(train.records), x_test.shape[1]) and np.isfinite(x_train).all()
    clf = fit_svm(x_train, np.array(train.label_indices))
    scores = svm_scores(clf, x_test, len(LABELS))
    assert scores.shape == (len(held_out.records), len(LABELS))
    assert np.allclose(scores.sum(1), 1, atol=1e-6) and (scores >= 0).all()
    y = np.array(held_out.label_indices)
    metrics = point_metrics(y, scores)
    recalls = [(scores.argmax(1)[y == c] == c).mean() for c in np.unique(y)]
    assert metrics["balanced_accuracy"] == np.mean(recalls)
    assert metrics["balanced_accuracy"] >= 2 / len(LABELS), metrics  # chance is 1/7
