"""Train/validation/test splits: lesion-grouped and stratified (default) or image-level (the study's leaky one).

A split is saved as a CSV (``image_id, lesion_id, label, split``) so that evaluation is reproducible.
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from training import LABELS
from training.data import Dataset, DatasetError

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    assignment: dict[str, str]  # image_id -> split name
    lesions: dict[str, str]  # image_id -> lesion id
    labels: dict[str, str]  # image_id -> label
    kind: str = "lesion"

    def ids(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; choose one of {SPLITS}")
        return [i for i, s in self.assignment.items() if s == name]

    def shared_lesions(self) -> dict[str, set[str]]:
        """Lesion ids that occur in more than one split (must be empty for a lesion-grouped split)."""
        sides: dict[str, set[str]] = defaultdict(set)
        for image_id, s in self.assignment.items():
            sides[self.lesions[image_id]].add(s)
        return {lesion: s for lesion, s in sides.items() if len(s) > 1}

    def proportions(self, name: str | None = None) -> dict[str, float]:
        ids = list(self.assignment) if name is None else self.ids(name)
        counts = Counter(self.labels[i] for i in ids)
        return {lab: counts.get(lab, 0) / max(len(ids), 1) for lab in LABELS}

    def max_proportion_gap(self) -> float:
        whole = self.proportions()
        return max(abs(self.proportions(s)[lab] - whole[lab]) for s in SPLITS for lab in LABELS)

    def summary(self) -> str:
        lines = [f"{self.kind}-level split; shared lesions across splits: {len(self.shared_lesions())}"]
        for s in SPLITS:
            ids = self.ids(s)
            props = self.proportions(s)
            lines.append(
                f"{s:5s} {len(ids):6d} images  " + " ".join(f"{k} {v:.3f}" for k, v in props.items())
            )
        lines.append(
            f"largest class-proportion gap to the whole: {self.max_proportion_gap() * 100:.2f} points"
        )
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image_id", "lesion_id", "label", "split"])
            for image_id in sorted(self.assignment):
                w.writerow(
                    [image_id, self.lesions[image_id], self.labels[image_id], self.assignment[image_id]]
                )

    @classmethod
    def load(cls, path: Path) -> Split:
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"split file {path} does not exist (create it with `dermalink data split`)")
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"image_id", "lesion_id", "label", "split"} <= set(rows[0]):
            raise DatasetError(f"{path} is not a split file (columns image_id, lesion_id, label, split)")
        bad = {r["split"] for r in rows} - set(SPLITS)
        if bad:
            raise DatasetError(f"{path} has unknown split names {sorted(bad)}")
        split = cls(
            {r["image_id"]: r["split"] for r in rows},
            {r["image_id"]: r["lesion_id"] for r in rows},
            {r["image_id"]: r["label"] for r in rows},
        )
        split.kind = "lesion" if not split.shared_lesions() else "image"
        return split


def read_duplicate_pairs(path: Path) -> list[tuple[str, str]]:
    """Pairs to keep together from a `dermalink data duplicates` CSV (exact and near duplicates)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(
            f"duplicates file {path} does not exist (create it with `dermalink data duplicates`)"
        )
    with path.open(newline="") as f:
        return [(r["image_a"], r["image_b"]) for r in csv.DictReader(f)]


def _targets(n: int, fractions: tuple[float, float, float]) -> list[float]:
    return [n * f for f in fractions]


def make_split(
    dataset: Dataset,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    *,
    seed: int = 42,
    image_level: bool = False,
    keep_together: list[tuple[str, str]] | None = None,
) -> Split:
    """Stratified split. Lesion-grouped by default: all images of one lesion land on the same side.

    Per class, lesions are shuffled (seeded) and, largest first, each goes to the split whose image
    count is furthest below its target; that keeps the per-class proportions close to ``fractions``
    (and hence every split's class mix close to the whole). ``image_level=True`` treats every image
    as its own lesion: the study's leaky split, kept only to measure the inflation it causes.
    ``keep_together``: image id pairs (e.g. near duplicates with different lesion ids) whose groups
    are merged so that they land on the same side.
    """
    if abs(sum(fractions) - 1) > 1e-6 or any(f <= 0 for f in fractions):
        raise DatasetError(f"split fractions must be positive and sum to 1, got {fractions}")
    rng = random.Random(seed)
    groups: dict[str, list[str]] = defaultdict(list)  # lesion -> image ids
    group_label: dict[str, str] = {}
    labels = {}
    lesions = {}
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    base_key = {r.image_id: (r.image_id if image_level else r.lesion_id) for r in dataset.records}
    for a, b in keep_together or []:
        if a in base_key and b in base_key:
            ra, rb = root(base_key[a]), root(base_key[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    for r in dataset.records:
        key = root(base_key[r.image_id])
        groups[key].append(r.image_id)
        labels[r.image_id] = r.label
        lesions[r.image_id] = r.lesion_id
        # a group's class is its first image's label (HAM10000 has one label per lesion)
        group_label.setdefault(key, r.label)
    by_class: dict[str, list[str]] = defaultdict(list)
    for key in sorted(groups):
        by_class[group_label[key]].append(key)
    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        keys = by_class[label]
        rng.shuffle(keys)
        keys.sort(key=lambda k: -len(groups[k]))  # stable: big groups first, random within a size
        n = sum(len(groups[k]) for k in keys)
        targets = _targets(n, fractions)
        filled = [0, 0, 0]
        for k in keys:
            size = len(groups[k])
            deficit = [(targets[i] - filled[i]) / fractions[i] for i in range(3)]
            side = max(range(3), key=lambda i: (deficit[i], -i))
            filled[side] += size
            for image_id in groups[k]:
                assignment[image_id] = SPLITS[side]
    return Split(assignment, lesions, labels, kind="image" if image_level else "lesion")
