"""Loading and validating labelled dermoscopy datasets.

Three layouts are understood:

* **HAM10000 as released**: ``HAM10000_metadata.csv`` (columns ``lesion_id, image_id, dx``; others kept)
  plus one or more image folders (``HAM10000_images_part_1/``, ``_part_2/``, ...), searched recursively
  for ``<image_id>.jpg|.jpeg|.png``.
* **ISIC ground-truth CSV**: a column ``image`` plus one-hot columns ``MEL, NV, BCC, AKIEC, BKL, DF, VASC``
  (no lesion ids: each image is its own lesion group, which the validation report says).
* **A class-per-folder tree**: ``<root>/<label>/*.jpg`` (for ``dermalink evaluate`` on any labelled folder).

Only the standard library, numpy and Pillow are used here (the serving install can import it).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from training import LABELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
HAM_REQUIRED = ("lesion_id", "image_id", "dx")
ISIC_COLUMNS = {
    "MEL": "mel",
    "NV": "nv",
    "BCC": "bcc",
    "AKIEC": "akiec",
    "BKL": "bkl",
    "DF": "df",
    "VASC": "vasc",
}


class DatasetError(ValueError):
    """The data cannot be used as given; the message says precisely why."""


@dataclass(frozen=True)
class Record:
    image_id: str
    lesion_id: str
    label: str
    path: Path


@dataclass
class ValidationReport:
    source: str
    n_metadata_rows: int = 0
    missing_images: list[str] = field(default_factory=list)
    unreadable_images: list[str] = field(default_factory=list)
    unknown_labels: list[tuple[str, str]] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    ambiguous_ids: dict[str, list[str]] = field(default_factory=dict)
    images_without_metadata: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    missing_classes: list[str] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    n_lesions: int = 0
    notes: list[str] = field(default_factory=list)
    missing_is_error: bool = True

    @property
    def errors(self) -> list[str]:
        out = []

        def show(items: list, what: str) -> None:
            if items:
                head = ", ".join(str(i) for i in items[:10])
                more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
                out.append(f"{len(items)} {what}: {head}{more}")

        if self.missing_is_error:
            show(self.missing_images, "image(s) listed in the metadata but not found")
        show(self.unreadable_images, "unreadable image file(s)")
        show(
            [f"{i}={lab!r}" for i, lab in self.unknown_labels],
            f"unknown label(s) (known: {', '.join(LABELS)})",
        )
        show(self.duplicate_ids, "duplicate image id(s) in the metadata")
        show([f"{k} in {v}" for k, v in self.ambiguous_ids.items()], "image id(s) found in several folders")
        if self.missing_classes:
            out.append(f"class(es) with no images: {', '.join(self.missing_classes)}")
        return out

    @property
    def warnings(self) -> list[str]:
        out = list(self.notes)
        if self.missing_images and not self.missing_is_error:
            out.append(f"{len(self.missing_images)} image(s) listed in the metadata were not found (skipped)")
        if self.images_without_metadata:
            out.append(
                f"{len(self.images_without_metadata)} image file(s) without metadata (ignored), "
                f"e.g. {', '.join(self.images_without_metadata[:5])}"
            )
        if self.excluded:
            out.append(f"{len(self.excluded)} image(s) removed by the exclusion list")
        return out

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [
            f"source: {self.source}",
            (
                f"metadata rows: {self.n_metadata_rows}; usable images: {sum(self.class_counts.values())}; "
                f"lesions: {self.n_lesions}"
            ),
            "class counts: " + ", ".join(f"{k} {v}" for k, v in self.class_counts.items()),
        ]
        lines += [f"ERROR: {e}" for e in self.errors]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class Dataset:
    records: list[Record]
    report: ValidationReport

    def __len__(self) -> int:
        return len(self.records)

    @property
    def image_ids(self) -> list[str]:
        return [r.image_id for r in self.records]

    @property
    def label_indices(self) -> list[int]:
        return [LABELS.index(r.label) for r in self.records]

    def subset(self, image_ids: list[str]) -> Dataset:
        by_id = {r.image_id: r for r in self.records}
        missing = [i for i in image_ids if i not in by_id]
        if missing:
            raise DatasetError(
                f"{len(missing)} id(s) of the split are not in the dataset, e.g. {missing[:5]}"
            )
        return Dataset([by_id[i] for i in image_ids], self.report)


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise DatasetError(f"{what} {path} does not exist")


def index_images(roots: list[Path]) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """Map image id (file stem) to path, searching ``roots`` recursively. Also return ids found twice."""
    found: dict[str, Path] = {}
    ambiguous: dict[str, list[str]] = {}
    for root in roots:
        _check_exists(root, "image folder")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if p.stem in found and found[p.stem] != p:
                ambiguous.setdefault(p.stem, [str(found[p.stem].parent)]).append(str(p.parent))
                continue
            found[p.stem] = p
    return found, ambiguous


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    _check_exists(path, "metadata file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = [c.strip() for c in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path} is not a readable CSV file: {exc}") from exc
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in rows]
    return columns, rows


def read_exclusions(path: Path | None) -> set[str]:
    """An exclusion list: one image id (or file name) per line; ``#`` starts a comment."""
    if path is None:
        return set()
    _check_exists(path, "exclusion list")
    out = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.add(Path(line).stem)
    return out


def _labelled_rows(path: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Return ``(image_id, lesion_id, label)`` rows from a HAM10000 metadata or ISIC ground-truth CSV."""
    columns, rows = _read_csv(path)
    notes: list[str] = []
    if all(c in columns for c in HAM_REQUIRED):
        return [(r["image_id"], r["lesion_id"] or r["image_id"], r["dx"].lower()) for r in rows], notes
    if "image" in columns and all(c in columns for c in ISIC_COLUMNS):
        out = []
        for r in rows:
            hot = [lab for col, lab in ISIC_COLUMNS.items() if float(r[col] or 0) >= 0.5]
            label = hot[0] if len(hot) == 1 else f"<{len(hot)} one-hot columns set>"
            out.append((r["image"], r.get("lesion_id") or r["image"], label))
        if "lesion_id" not in columns:
            notes.append("ISIC ground truth has no lesion ids: each image is its own lesion group")
        return out, notes
    missing_ham = [c for c in HAM_REQUIRED if c not in columns]
    raise DatasetError(
        f"{path}: not a HAM10000 metadata file (missing column(s) {', '.join(missing_ham)}) nor an ISIC "
        f"ground-truth file (needs 'image' and {', '.join(ISIC_COLUMNS)}); columns found: {columns}"
    )


def _is_readable(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def load_dataset(
    data: Path,
    images: list[Path] | None = None,
    *,
    exclude: Path | None = None,
    check_readable: bool = True,
    require_all_classes: bool = True,
    allow_missing: bool = False,
) -> Dataset:
    """Load and validate a labelled dataset; raise :class:`DatasetError` listing every problem found.

    ``data`` is a metadata CSV (HAM10000 or ISIC ground truth), a folder containing one, or a
    class-per-folder tree. ``images`` are the folders searched recursively (default: the CSV's folder).
    """
    data = Path(data)
    _check_exists(data, "data path")
    excluded_ids = read_exclusions(exclude)
    csv_path = data if data.is_file() else _find_csv(data)
    report = ValidationReport(source=str(csv_path or data), missing_is_error=not allow_missing)
    if csv_path is None:
        rows, roots = _class_folder_rows(data, images)
    else:
        rows, report.notes = _labelled_rows(csv_path)
        roots = [Path(p) for p in images] if images else [csv_path.parent]
    report.n_metadata_rows = len(rows)
    index, report.ambiguous_ids = index_images(roots)
    if not index:
        raise DatasetError(
            f"no image files ({', '.join(IMAGE_SUFFIXES)}) found under {', '.join(map(str, roots))}"
        )

    seen: Counter[str] = Counter(r[0] for r in rows)
    report.duplicate_ids = sorted(i for i, n in seen.items() if n > 1)
    records = []
    for image_id, lesion_id, label in rows:
        if image_id in excluded_ids:
            report.excluded.append(image_id)
            continue
        if label not in LABELS:
            report.unknown_labels.append((image_id, label))
            continue
        path = index.get(image_id)
        if path is None:
            report.missing_images.append(image_id)
            continue
        if check_readable and not _is_readable(path):
            report.unreadable_images.append(str(path))
            continue
        records.append(Record(image_id, lesion_id, label, path))
    listed = set(seen)
    report.images_without_metadata = sorted(i for i in index if i not in listed)
    counts = Counter(r.label for r in records)
    report.class_counts = {lab: counts.get(lab, 0) for lab in LABELS}
    report.n_lesions = len({r.lesion_id for r in records})
    if require_all_classes:
        report.missing_classes = [lab for lab in LABELS if counts.get(lab, 0) == 0]
    if not report.ok:
        raise DatasetError(f"data validation failed for {report.source}:\n" + "\n".join(report.errors))
    return Dataset(records, report)


def _find_csv(folder: Path) -> Path | None:
    preferred = folder / "HAM10000_metadata.csv"
    if preferred.exists():
        return preferred
    csvs = sorted(folder.glob("*.csv"))
    if len(csvs) > 1:
        raise DatasetError(
            f"{folder} holds several CSV files ({[c.name for c in csvs]}): pass one explicitly"
        )
    return csvs[0] if csvs else None


def _class_folder_rows(
    root: Path, images: list[Path] | None
) -> tuple[list[tuple[str, str, str]], list[Path]]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise DatasetError(
            f"{root} has no metadata CSV and no class sub-folders ({', '.join(LABELS)}): nothing is labelled"
        )
    rows = []
    for sub in subdirs:
        for p in sorted(sub.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                rows.append((p.stem, p.stem, sub.name.lower()))
    return rows, [Path(p) for p in images] if images else [root]
