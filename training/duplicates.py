"""Exact and near-duplicate image detection (MD5 of the file, perceptual hash of the pixels).

A near duplicate needs both a small pHash distance and a small pixel difference between 32x32
thumbnails standardised per channel (robust to brightness/colour shifts and re-encoding). pHash alone
is too coarse for dermoscopy: on HAM10000 most pHash matches at distance <= 4 between different lesions
are merely similar compositions (a dark blob in the centre of skin), which the pixel check rejects.
Near-duplicates with *different* lesion ids are flagged: if they fall on both sides of a split they
leak, even with a lesion-grouped split. ``imagehash`` is imported lazily (it is in the ``train`` extra).
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from training.data import Record


@dataclass
class DuplicateReport:
    exact_groups: list[list[str]] = field(default_factory=list)  # image ids with identical bytes
    near_pairs: list[tuple[str, str, int]] = field(default_factory=list)  # (a, b, hamming distance)
    cross_lesion_pairs: list[tuple[str, str, int]] = field(default_factory=list)
    threshold: int = 0
    pixel_threshold: float = 0.0
    rejected_candidates: int = 0  # pHash matches rejected by the pixel check

    def summary(self) -> str:
        n_exact = sum(len(g) - 1 for g in self.exact_groups)
        return (
            f"exact duplicates: {len(self.exact_groups)} group(s), {n_exact} redundant file(s)\n"
            f"near duplicates (pHash distance <= {self.threshold} and standardised thumbnail difference <= "
            f"{self.pixel_threshold}): {len(self.near_pairs)} pair(s) "
            f"({self.rejected_candidates} pHash-only candidates rejected)\n"
            f"  of which with different lesion ids (leak across a split): {len(self.cross_lesion_pairs)}"
        )

    def save(self, path: Path, lesions: dict[str, str]) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["kind", "image_a", "image_b", "distance", "lesion_a", "lesion_b"])
            for g in self.exact_groups:
                for other in g[1:]:
                    w.writerow(["exact", g[0], other, 0, lesions.get(g[0], ""), lesions.get(other, "")])
            cross = {(a, b) for a, b, _ in self.cross_lesion_pairs}
            for a, b, d in self.near_pairs:
                kind = "near-cross-lesion" if (a, b) in cross else "near"
                w.writerow([kind, a, b, d, lesions.get(a, ""), lesions.get(b, "")])


def _bits(h) -> np.ndarray:
    return np.asarray(h.hash, dtype=bool).ravel()


def _thumbnail(im: Image.Image, size: int = 32) -> np.ndarray:
    """32x32 RGB thumbnail, standardised per channel (zero mean, unit variance)."""
    a = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return ((a - a.mean((0, 1))) / (a.std((0, 1)) + 1e-6)).astype(np.float16)


def hash_images(
    records: list[Record], progress: Callable | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """MD5 hex digests, a ``[N, 64]`` bool array of perceptual hashes (pHash, 8x8) and standardised
    ``[N, 32, 32, 3]`` thumbnails."""
    import imagehash

    md5s, bits, thumbs = [], [], []
    for r in records:
        data = r.path.read_bytes()
        md5s.append(hashlib.md5(data).hexdigest())
        with Image.open(r.path) as im:
            rgb = im.convert("RGB")
            bits.append(_bits(imagehash.phash(rgb)))
            thumbs.append(_thumbnail(rgb))
        if progress:
            progress()
    if not bits:
        return md5s, np.zeros((0, 64), bool), np.zeros((0, 32, 32, 3), np.float16)
    return md5s, np.stack(bits), np.stack(thumbs)


def thumbnail_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def hamming_pairs(bits: np.ndarray, threshold: int, chunk: int = 1024) -> list[tuple[int, int, int]]:
    """All index pairs ``i < j`` with Hamming distance ``<= threshold`` (vectorised, chunked)."""
    x = bits.astype(np.float32)
    nx = 1.0 - x
    out = []
    for start in range(0, len(x), chunk):
        a = x[start : start + chunk]
        d = a @ nx.T + (1.0 - a) @ x.T  # differing bits
        ii, jj = np.nonzero(d <= threshold + 0.5)
        for i, j in zip(ii + start, jj, strict=True):
            if i < j:
                out.append((int(i), int(j), round(d[i - start, j])))
    return out


def find_duplicates(
    records: list[Record],
    threshold: int = 4,
    progress: Callable | None = None,
    pixel_threshold: float = 0.12,
) -> DuplicateReport:
    md5s, bits, thumbs = hash_images(records, progress)
    groups: dict[str, list[str]] = defaultdict(list)
    for r, m in zip(records, md5s, strict=True):
        groups[m].append(r.image_id)
    exact = [sorted(g) for g in groups.values() if len(g) > 1]
    exact_pairs = {frozenset((g[0], o)) for g in exact for o in g[1:]}
    report = DuplicateReport(exact_groups=sorted(exact), threshold=threshold, pixel_threshold=pixel_threshold)
    for i, j, d in hamming_pairs(bits, threshold):
        a, b = records[i], records[j]
        if frozenset((a.image_id, b.image_id)) in exact_pairs:
            continue  # already reported as exact
        if thumbnail_difference(thumbs[i], thumbs[j]) > pixel_threshold:
            report.rejected_candidates += 1
            continue
        pair = (a.image_id, b.image_id, d)
        report.near_pairs.append(pair)
        if a.lesion_id != b.lesion_id:
            report.cross_lesion_pairs.append(pair)
    return report
