"""Bad input fails early with a precise message."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.config import get_preset
from training.data import DatasetError, load_dataset


def _rewrite(meta: Path, fn) -> None:
    rows = list(csv.DictReader(meta.open()))
    rows = fn(rows)
    with meta.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_loads_released_layout_recursively(ham_tiny):
    ds = load_dataset(ham_tiny / "HAM10000_metadata.csv")
    assert len(ds) == 56 and ds.report.ok
    assert {r.path.parent.name for r in ds.records} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}


def test_wrong_path(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")


def test_missing_columns(ham_tiny):
    meta = ham_tiny / "HAM10000_metadata.csv"
    _rewrite(meta, lambda rows: [{k: v for k, v in r.items() if k != "lesion_id"} for r in rows])
    with pytest.raises(DatasetError, match="missing column.*lesion_id"):
        load_dataset(meta)


def test_folder_of_non_images(tmp_path):
    folder = tmp_path / "junk"
    (folder / "nv").mkdir(parents=True)
    for i in range(3):
        (folder / "nv" / f"x{i}.jpg").write_text("not an image")
    with pytest.raises(DatasetError, match="unreadable image"):
        load_dataset(folder, require_all_classes=False)
    only_text = tmp_path / "text"
    only_text.mkdir()
    (only_text / "notes.csv").write_text("lesion_id,image_id,dx\nL1,I1,nv\n")
    with pytest.raises(DatasetError, match="no image files"):
        load_dataset(only_text / "notes.csv")


def test_missing_class_and_unknown_label_and_duplicate_ids(ham_tiny):
    meta = ham_tiny / "HAM10000_metadata.csv"
    _rewrite(meta, lambda rows: [r for r in rows if r["dx"] != "df"])
    with pytest.raises(DatasetError, match="no images: df"):
        load_dataset(meta)
    _rewrite(meta, lambda rows: rows + [dict(rows[0], dx="melanoma")] + [dict(rows[1])])
    with pytest.raises(DatasetError) as err:
        load_dataset(meta, require_all_classes=False)
    assert "unknown label" in str(err.value) and "'melanoma'" in str(err.value)
    assert "duplicate image id" in str(err.value)


def test_missing_images_listed(ham_tiny):
    victim = min((ham_tiny / "HAM10000_images_part_2").glob("*.jpg"))
    victim.unlink()
    with pytest.raises(DatasetError, match=f"not found: {victim.stem}"):
        load_dataset(ham_tiny)


def test_exclusion_list(ham_tiny, tmp_path):
    ids = [r.image_id for r in load_dataset(ham_tiny).records][:3]
    excl = tmp_path / "exclude.txt"
    excl.write_text("# artefacts\n" + "\n".join(ids) + "\n")
    ds = load_dataset(ham_tiny, exclude=excl)
    assert len(ds) == 53 and not set(ids) & set(ds.image_ids)
    assert sorted(ds.report.excluded) == sorted(ids)


def test_unknown_preset():
    with pytest.raises(DatasetError, match="unknown preset 'fast'.*paper"):
        get_preset("fast")


def test_invalid_config():
    with pytest.raises(DatasetError, match="alpha 0.6"):
        get_preset("default").replace(alpha=0.6)


def test_weights_of_wrong_alpha(shared):
    pytest.importorskip("h5py")
    from training.model import check_weights, weights_alpha
    from training.paths import default_weights

    w035 = default_weights(0.35)
    assert weights_alpha(w035) == 0.35
    assert weights_alpha(default_weights(1.0)) == 1.0
    with pytest.raises(DatasetError, match="for alpha 0.35, but the model uses alpha 1.0"):
        check_weights(w035, 1.0)


def test_weights_not_hdf5(tmp_path):
    pytest.importorskip("h5py")
    from training.model import check_weights

    bogus = tmp_path / "w.h5"
    bogus.write_bytes(b"definitely not hdf5")
    with pytest.raises(DatasetError, match="not an HDF5"):
        check_weights(bogus, 1.0)


def test_cli_reports_errors_cleanly(ham_tiny, tmp_path):
    import typer

    from training.cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "validate", "--data", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["train", "--preset", "nope", "--data", str(ham_tiny)])
    assert res.exit_code == 2 and "unknown preset" in res.output
    res = runner.invoke(app, ["data", "split", "--data", str(ham_tiny), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.csv").exists()


def test_isic_ground_truth_and_class_folders(ham_tiny, tmp_path):
    import shutil

    ham = load_dataset(ham_tiny)
    cols = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    gt = ham_tiny / "ISIC2018_Task3_Training_GroundTruth.csv"
    with gt.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", *cols])
        for r in ham.records:
            w.writerow([r.image_id, *[1.0 if c.lower() == r.label else 0.0 for c in cols]])
    isic = load_dataset(gt)
    assert {r.image_id: r.label for r in isic.records} == {r.image_id: r.label for r in ham.records}
    assert any("no lesion ids" in n for n in isic.report.notes)
    # a class-per-folder tree
    tree = tmp_path / "tree"
    for r in ham.records[:10]:
        (tree / r.label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r.path, tree / r.label / r.path.name)
    folder = load_dataset(tree, require_all_classes=False)
    assert {r.image_id: r.label for r in folder.records} == {r.image_id: r.label for r in ham.records[:10]}


def test_allow_missing_skips_absent_images(ham_tiny):
    victims = sorted((ham_tiny / "HAM10000_images_part_2").glob("*.jpg"))[:3]
    for v in victims:
        v.unlink()
    with pytest.raises(DatasetError, match="3 image"):
        load_dataset(ham_tiny)
    ds = load_dataset(ham_tiny, allow_missing=True, require_all_classes=False)
    assert len(ds) == 53 and sorted(ds.report.missing_images) == sorted(v.stem for v in victims)
    assert any("not found (skipped)" in w for w in ds.report.warnings)
