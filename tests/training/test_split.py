"""The lesion-grouped split on the real HAM10000 metadata, and split file round trips."""

from __future__ import annotations

from collections import Counter

import pytest

from training import LABELS
from training.data import Dataset, Record, ValidationReport
from training.split import SPLITS, Split, make_split


def _metadata_dataset(shared) -> Dataset:
    """The real metadata (no images needed): one record per row."""
    import csv

    path = shared / "data" / "ham10000" / "HAM10000_metadata.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    records = [Record(r["image_id"], r["lesion_id"], r["dx"], path) for r in rows]
    return Dataset(records, ValidationReport(source=str(path)))


def test_lesion_split_on_real_metadata(shared):
    ds = _metadata_dataset(shared)
    assert len(ds) == 10015
    split = make_split(ds, seed=42)
    # every image assigned exactly once
    assert set(split.assignment) == set(ds.image_ids)
    # no lesion on two sides
    assert split.shared_lesions() == {}
    sides: dict[str, set[str]] = {}
    for r in ds.records:
        sides.setdefault(r.lesion_id, set()).add(split.assignment[r.image_id])
    assert all(len(s) == 1 for s in sides.values())
    # sizes close to 70/15/15 and class proportions within 2 points of the whole
    n = len(ds)
    for name, frac in zip(SPLITS, (0.70, 0.15, 0.15), strict=True):
        assert abs(len(split.ids(name)) / n - frac) < 0.01
    whole = Counter(r.label for r in ds.records)
    for name in SPLITS:
        ids = split.ids(name)
        counts = Counter(split.labels[i] for i in ids)
        for lab in LABELS:
            assert abs(counts[lab] / len(ids) - whole[lab] / n) <= 0.02, (name, lab)
            assert counts[lab] > 0, (name, lab)


def test_image_level_split_leaks_lesions(shared):
    ds = _metadata_dataset(shared)
    leaky = make_split(ds, seed=42, image_level=True)
    # the study's split: many lesions have images on several sides
    assert len(leaky.shared_lesions()) > 100
    assert leaky.max_proportion_gap() <= 0.02


def test_split_is_seeded_and_round_trips(shared, tmp_path):
    ds = _metadata_dataset(shared)
    a = make_split(ds, seed=7)
    b = make_split(ds, seed=7)
    c = make_split(ds, seed=8)
    assert a.assignment == b.assignment
    assert a.assignment != c.assignment
    a.save(tmp_path / "split.csv")
    loaded = Split.load(tmp_path / "split.csv")
    assert loaded.assignment == a.assignment
    assert loaded.kind == "lesion"


def test_bad_fractions_rejected():
    from training.data import DatasetError

    ds = Dataset([Record("a", "l", "nv", __import__("pathlib").Path("x"))], ValidationReport(source="x"))
    with pytest.raises(DatasetError, match="sum to 1"):
        make_split(ds, (0.5, 0.2, 0.2))


def test_keep_together_merges_groups(shared):
    ds = _metadata_dataset(shared)
    ids = [r.image_id for r in ds.records]
    base = make_split(ds, seed=42)
    # pick pairs that the plain split separates
    pairs = []
    for a, b in zip(ids[::50], ids[25::50], strict=False):
        if base.assignment[a] != base.assignment[b] and base.lesions[a] != base.lesions[b]:
            pairs.append((a, b))
        if len(pairs) == 5:
            break
    assert pairs
    merged = make_split(ds, seed=42, keep_together=pairs)
    assert all(merged.assignment[a] == merged.assignment[b] for a, b in pairs)
    assert merged.shared_lesions() == {}
    assert merged.max_proportion_gap() <= 0.02
