"""A uint8 image cache: every image decoded and resized once with the shared preprocessing contract."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from backend.inference.preprocess import load_image
from training.data import Record


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False)


def decode_records(records: list[Record], size: int, desc: str = "decode") -> np.ndarray:
    """``[N, size, size, 3]`` uint8, decoded with :func:`backend.inference.preprocess.load_image`."""
    out = np.empty((len(records), size, size, 3), np.uint8)
    with _progress(len(records), desc) as bar:
        for i, r in enumerate(records):
            out[i] = load_image(r.path, size)
            bar.update()
    return out


def cached_images(records: list[Record], size: int, cache_dir: Path | None) -> np.ndarray:
    """Decode ``records`` once into ``cache_dir/images_<size>_<n>.npy`` (memory-mapped on reuse).

    The file name carries a digest of the ordered image ids and paths, so different subsets never
    overwrite each other's cache (a run may be reading one while another is written).
    """
    if cache_dir is None:
        return decode_records(records, size)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = [[r.image_id, str(r.path)] for r in records]
    digest = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:12]
    stem = cache_dir / f"images_{size}_{len(records)}_{digest}"
    ids_file, npy = stem.with_suffix(".json"), stem.with_suffix(".npy")
    if ids_file.exists() and npy.exists() and json.loads(ids_file.read_text()) == key:
        return np.load(npy, mmap_mode="r")
    arr = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(len(records), size, size, 3))
    with _progress(len(records), f"decode+resize to {size}") as bar:
        for i, r in enumerate(records):
            arr[i] = load_image(r.path, size)
            bar.update()
    arr.flush()
    ids_file.write_text(json.dumps(key))
    return np.load(npy, mmap_mode="r")
