"""Fixtures: tiny synthetic data in the HAM10000 layout, and the shared data location."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import LABELS

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("DERMALINK_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not (path / "data" / "ham10000" / "HAM10000_metadata.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared data not found at {path} (set DERMALINK_SHARED)", pytrace=False)
        pytest.skip(f"shared data not found at {path} (set DERMALINK_SHARED)")
    return path


def make_ham_layout(
    root: Path, per_class: int = 8, size: tuple[int, int] = (200, 150), seed: int = 0, parts: int = 2
) -> Path:
    """Write HAM10000_metadata.csv and images split over HAM10000_images_part_<k>/ folders.

    Each class has its own colour and texture so that a tiny model can tell them apart; images come
    in lesion groups of one or two (like the real data).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(1, parts + 1):
        (root / f"HAM10000_images_part_{k}").mkdir(exist_ok=True)
    rows = []
    n = 0
    for ci, label in enumerate(LABELS):
        colour = np.array([40 + 30 * ci, 200 - 25 * ci, 80 + (ci * 53) % 160], dtype=float)
        i = 0
        lesion = 0
        while i < per_class:
            group = 2 if (i % 3 == 0 and i + 1 < per_class) else 1
            for _ in range(group):
                w, h = size
                yy, xx = np.mgrid[0:h, 0:w]
                # a lesion-like ellipse in the class colour on a skin-tone background
                cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
                rx, ry = w * rng.uniform(0.18, 0.32), h * rng.uniform(0.18, 0.32)
                inside = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) <= 1.0
                texture = np.sin(xx / (6 + 2 * ci) + yy / (9 + ci)) * 25
                skin = np.array([225.0, 180.0, 160.0])
                img = np.where(inside[..., None], colour + texture[..., None], skin) + rng.normal(
                    0, 4, (h, w, 3)
                )
                arr = np.clip(img, 0, 255).astype(np.uint8)
                image_id = f"ISIC_{9000000 + n:07d}"
                part = 1 + n % parts
                Image.fromarray(arr).save(
                    root / f"HAM10000_images_part_{part}" / f"{image_id}.jpg", quality=92
                )
                rows.append(
                    {
                        "lesion_id": f"HAM_{ci:02d}{lesion:05d}",
                        "image_id": image_id,
                        "dx": label,
                        "dx_type": "histo",
                        "age": "50.0",
                        "sex": "male",
                        "localization": "back",
                    }
                )
                n += 1
                i += 1
            lesion += 1
    with (root / "HAM10000_metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture
def ham_tiny(tmp_path: Path) -> Path:
    return make_ham_layout(tmp_path / "ham")
