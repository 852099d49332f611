"""Duplicate detection finds planted exact and near duplicates and flags cross-lesion ones."""

from __future__ import annotations

import csv
import shutil

import pytest
from PIL import Image, ImageEnhance

from training.data import load_dataset

pytest.importorskip("imagehash")


def test_planted_duplicates_are_found(ham_tiny):
    from training.duplicates import find_duplicates

    part = ham_tiny / "HAM10000_images_part_1"
    src_a, src_b = sorted(part.glob("*.jpg"))[:2]
    # exact copy (same bytes) under a new id and lesion
    shutil.copyfile(src_a, part / "ISIC_8000001.jpg")
    # near copy: resized, slightly brightened, re-encoded; another lesion id
    with Image.open(src_b) as im:
        near = ImageEnhance.Brightness(im.resize((180, 135))).enhance(1.05)
        near.save(part / "ISIC_8000002.jpg", quality=80)
    meta = ham_tiny / "HAM10000_metadata.csv"
    rows = list(csv.DictReader(meta.open()))
    label = {r["image_id"]: r["dx"] for r in rows}
    with meta.open("a", newline="") as f:
        w = csv.writer(f)
        w.writerow(["HAM_PLANT1", "ISIC_8000001", label[src_a.stem], "histo", "50.0", "male", "back"])
        w.writerow(["HAM_PLANT2", "ISIC_8000002", label[src_b.stem], "histo", "50.0", "male", "back"])
    ds = load_dataset(meta)
    report = find_duplicates(ds.records, threshold=6)
    assert sorted([src_a.stem, "ISIC_8000001"]) in report.exact_groups
    near = {frozenset((a, b)) for a, b, _ in report.near_pairs}
    assert frozenset((src_b.stem, "ISIC_8000002")) in near
    cross = {frozenset((a, b)) for a, b, _ in report.cross_lesion_pairs}
    assert frozenset((src_b.stem, "ISIC_8000002")) in cross
    # distinct synthetic classes are not near duplicates of each other
    by_id = {r.image_id: r.label for r in ds.records}
    assert all(by_id[a] == by_id[b] for a, b, _ in report.near_pairs)
    report.save(ham_tiny / "dups.csv", {r.image_id: r.lesion_id for r in ds.records})
    kinds = [r["kind"] for r in csv.DictReader((ham_tiny / "dups.csv").open())]
    assert "exact" in kinds and "near-cross-lesion" in kinds


def test_hamming_pairs_matches_bruteforce():
    import numpy as np

    from training.duplicates import hamming_pairs

    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, (50, 64)).astype(bool)
    bits[10] = bits[3]
    bits[20] = bits[4]
    bits[20, :3] ^= True
    got = {(i, j) for i, j, _ in hamming_pairs(bits, 3, chunk=7)}
    want = {(i, j) for i in range(50) for j in range(i + 1, 50) if (bits[i] != bits[j]).sum() <= 3}
    assert got == want
    assert (3, 10) in got and (4, 20) in got


def test_similar_composition_is_not_a_duplicate(tmp_path):
    """Two different 'lesions' (same layout, different texture and colour) may share a pHash neighbourhood
    but are rejected by the pixel check; a colour-shifted copy is kept."""
    import numpy as np

    from training.data import Record
    from training.duplicates import find_duplicates

    yy, xx = np.mgrid[0:150, 0:200]
    paths = []
    shapes = [(100, 75, 40, 30, 7.0), (112, 68, 30, 36, 13.0)]  # centre, radii, texture period
    colours = [((230, 190, 170), (90, 50, 40)), ((210, 170, 180), (120, 60, 50))]
    for k, ((cx, cy, rx, ry, period), (skin, lesion)) in enumerate(zip(shapes, colours, strict=True)):
        blob = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) <= 1
        texture = 30 * np.sin(xx / period) * np.cos(yy / period)
        img = np.where(blob[..., None], np.array(lesion) + texture[..., None], np.array(skin))
        p = tmp_path / f"img{k}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(p)
        paths.append(p)
    with Image.open(paths[0]) as im:  # a colour-shifted copy of image 0
        arr = np.asarray(im).astype(float) * np.array([0.95, 1.0, 1.08])
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(tmp_path / "copy.png")
    paths.append(tmp_path / "copy.png")
    records = [Record(p.stem, f"L{i}", "nv", p) for i, p in enumerate(paths)]
    report = find_duplicates(records, threshold=64)  # every pair is a pHash candidate
    pairs = {frozenset((a, b)) for a, b, _ in report.near_pairs}
    assert frozenset(("img0", "copy")) in pairs
    assert frozenset(("img0", "img1")) not in pairs
    assert report.rejected_candidates >= 1
