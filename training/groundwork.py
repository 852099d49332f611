"""Model v2 groundwork (issue 12): v1's predictions through the served path, cached once, then analysed.

``python -m training.groundwork predict`` runs the shipped ONNX model on the validation and test parts of
the lesion-grouped split (seed 42, the shipped run's split, re-derived with :func:`training.split.make_split`)
twice: on the original files, and on the pixels the platform actually analyses (upload bytes ->
``backend.images.intake.sanitize``, i.e. a JPEG q95 4:4:4 re-encode -> ``backend.inference.preprocess.load_image``),
the latter in all 8 dihedral views for test-time augmentation. Everything lands in one ``.npz`` under
``runs/`` (git-ignored). ``python -m training.groundwork analyse`` fits the decision rules on validation
(:mod:`training.decision`) and reports validation and test numbers with lesion-clustered intervals.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training import LABELS, MODEL_NAME
from training.paths import REPO_ROOT, default_images, default_metadata, model_repository

DEFAULT_OUT = REPO_ROOT / "runs" / "groundwork"
N_VIEWS = 8


def served_pixels(data: bytes) -> np.ndarray:
    """The pixels the platform classifies for an upload: intake re-encode, then the shared preprocessing."""
    from backend.images.intake import sanitize
    from backend.inference.preprocess import load_image

    clean = sanitize(data, max_bytes=1 << 30, max_pixels=1 << 30)
    return load_image(clean.data)


def split_records(metadata: Path, images: Path, seed: int = 42) -> dict[str, list]:
    """Validation and test records of the shipped run's split (lesion-grouped, 70/15/15, seed 42)."""
    from training.data import load_dataset
    from training.split import make_split

    ds = load_dataset(metadata, [images], check_readable=False)
    split = make_split(ds, seed=seed)
    by_id = {r.image_id: r for r in ds.records}
    return {name: [by_id[i] for i in sorted(split.ids(name))] for name in ("val", "test")}


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    from training.train import dihedral_view

    return np.ascontiguousarray(dihedral_view(x, k))


def session(path: Path, threads: int = 2, spinning: bool = True):
    """An ONNX Runtime CPU session; ``spinning=False`` stops idle threads busy-waiting (kinder on a shared CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_model(sess, x: np.ndarray, batch: int = 64) -> np.ndarray:
    name, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    return np.concatenate([sess.run([out], {name: x[s : s + batch]})[0] for s in range(0, len(x), batch)])


def predict(
    model: Path,
    metadata: Path,
    images: Path,
    out: Path,
    parts: tuple[str, ...] = ("val", "test"),
    threads: int = 1,
) -> Path:
    """Cache v1's probabilities: original files, and the served path in 8 dihedral views.

    One file per part (``v1_predictions_<part>.npz``), so that the parts can run as separate processes.
    """
    from tqdm.auto import tqdm

    from backend.inference.preprocess import load_image

    sess = session(model, threads, spinning=False)
    records_by_part = split_records(metadata, images)
    out.mkdir(parents=True, exist_ok=True)
    for name in parts:
        arrays: dict[str, np.ndarray] = {}
        records = records_by_part[name]
        orig = np.empty((len(records), 224, 224, 3), np.uint8)
        served = np.empty_like(orig)
        for i, r in enumerate(tqdm(records, desc=f"decode {name}", leave=False)):
            data = Path(r.path).read_bytes()
            orig[i] = load_image(data)
            served[i] = served_pixels(data)
        t0 = time.perf_counter()
        arrays[f"{name}_orig"] = run_model(sess, orig)
        arrays[f"{name}_views"] = np.stack([run_model(sess, dihedral(served, k)) for k in range(N_VIEWS)])
        arrays[f"{name}_seconds_inference"] = np.array(time.perf_counter() - t0)
        arrays[f"{name}_pixel_mad"] = np.abs(orig.astype(np.int16) - served).mean(axis=(1, 2, 3))
        arrays[f"{name}_ids"] = np.array([r.image_id for r in records])
        arrays[f"{name}_lesions"] = np.array([r.lesion_id for r in records])
        arrays[f"{name}_y"] = np.array([LABELS.index(r.label) for r in records])
        np.savez_compressed(out / f"v1_predictions_{name}.npz", **arrays)
    return out


def load_predictions(out: Path) -> dict[str, np.ndarray]:
    """The cached arrays of all parts, merged."""
    merged: dict[str, np.ndarray] = {}
    for f in sorted(Path(out).glob("v1_predictions_*.npz")):
        with np.load(f) as d:
            merged.update({k: d[k] for k in d.files})
    return merged


def latency(model: Path, images: Path, repeats: int = 30, batch: int = 16, threads: int = 2) -> dict:
    """ONNX Runtime ms per image of v1 and of v1 with in-graph 8-view TTA (:mod:`training.tta_export`).

    One image per call and ``batch`` images per call, in one process; rounds alternate the four settings
    so that the (shared, loaded) machine's load hits them alike; medians are reported.
    """
    import platform
    import tempfile

    from backend.inference.preprocess import load_image
    from training.tta_export import add_tta

    with tempfile.TemporaryDirectory() as tmp:
        sessions = {
            "plain": session(model, threads),
            "tta8": session(add_tta(model, Path(tmp) / "tta.onnx"), threads),
        }
    files = sorted(Path(images).glob("*.jpg"))[:batch]
    x = np.stack([load_image(f) for f in files])
    inputs = {"batch1": x[:1], "batched": x}
    times: dict[str, list[float]] = {f"{m}_{b}": [] for m in sessions for b in inputs}
    for sess in sessions.values():
        sess.run(None, {sess.get_inputs()[0].name: x[:2]})  # warm-up
    for r in range(repeats):
        for m, sess in sessions.items():
            for b, arr in inputs.items():
                if b == "batched" and r % 5:
                    continue
                t0 = time.perf_counter()
                sess.run(None, {sess.get_inputs()[0].name: arr})
                times[f"{m}_{b}"].append((time.perf_counter() - t0) * 1000 / len(arr))
    res = {k: round(float(np.median(v)), 2) for k, v in times.items()}
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "ms_per_image": res,
        "tta_cost_batch1": res["tta8_batch1"] / res["plain_batch1"],
        "tta_cost_batched": res["tta8_batched"] / res["plain_batched"],
        "batch": len(x),
        "repeats": {k: len(v) for k, v in times.items()},
        "threads": threads,
        "cpu": cpu,
        "load_average_at_end": Path("/proc/loadavg").read_text().split()[:3],
    }


def write_triage(predictions: Path, model_dir: Path, version: str) -> dict:
    """``<model_dir>/triage.json`` from the cached *served-path* validation predictions of ``version``:
    the thresholds and the learned referral rule (:func:`training.triage.choose_thresholds` with lesion
    groups), so the rules are chosen on the pixels the platform classifies. Keeps the temperature note
    that ``dermalink export`` wrote. Test predictions are never read."""
    from training.triage import choose_thresholds

    d = load_predictions(predictions)
    triage = choose_thresholds(d["val_views"][0], d["val_y"], version=version, groups=d["val_lesions"])
    triage["chosen_on"] = (
        "validation split (lesion-grouped) through the served path (JPEG q95 re-encode); never the test split"
    )
    path = Path(model_dir) / "triage.json"
    if path.exists():
        old = json.loads(path.read_text())
        triage["model"] = old.get("model", triage["model"])
        if "temperature_baked_into_model" in old:
            triage["temperature_baked_into_model"] = old["temperature_baked_into_model"]
    path.write_text(json.dumps(triage, indent=2) + "\n")
    return triage


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.groundwork", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("predict", help="cache v1 predictions (original files and served path, 8 views)")
    pr.add_argument("--model", type=Path, default=model_repository() / MODEL_NAME / "1" / "model.onnx")
    pr.add_argument("--metadata", type=Path, default=default_metadata())
    pr.add_argument("--images", type=Path, default=default_images())
    pr.add_argument("--out", type=Path, default=DEFAULT_OUT)
    pr.add_argument("--part", action="append", choices=["val", "test"], help="default: both")
    pr.add_argument("--threads", type=int, default=1)
    an = sub.add_parser("analyse", help="decision rules fitted on validation; validation and test numbers")
    an.add_argument("--out", type=Path, default=DEFAULT_OUT)
    an.add_argument("--n-boot", type=int, default=1000, help="resamples for test intervals")
    an.add_argument("--n-boot-val", type=int, default=200, help="resamples for validation intervals")
    la = sub.add_parser("latency", help="ONNX Runtime ms/image with and without 8-view TTA (same run)")
    la.add_argument("--model", type=Path, default=model_repository() / MODEL_NAME / "1" / "model.onnx")
    la.add_argument("--images", type=Path, default=default_images())
    la.add_argument("--out", type=Path, default=DEFAULT_OUT)
    la.add_argument("--batch", type=int, default=16, help="images per call in the batched setting")
    tr = sub.add_parser("triage", help="write triage.json from cached served-path validation predictions")
    tr.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the cached predictions")
    tr.add_argument("--model-dir", type=Path, default=model_repository() / MODEL_NAME)
    tr.add_argument("--version", required=True, help="the model version the predictions are of")
    args = p.parse_args(argv)
    if args.cmd == "triage":
        triage = write_triage(args.out, args.model_dir, args.version)
        print(json.dumps({k: triage[k] for k in ("malignant_threshold", "low_confidence_threshold")}))
    elif args.cmd == "predict":
        parts = tuple(args.part or ("val", "test"))
        print(predict(args.model, args.metadata, args.images, args.out, parts, args.threads))
    elif args.cmd == "latency":
        res = latency(args.model, args.images, batch=args.batch)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "latency.json").write_text(json.dumps(res, indent=2))
        print(json.dumps(res, indent=2))
    else:
        from training.groundwork_analysis import analyse, markdown

        res = analyse(args.out, args.n_boot, args.n_boot_val)
        (args.out / "analysis.md").write_text(markdown(res))
        print(args.out / "analysis.json")


if __name__ == "__main__":
    main()
