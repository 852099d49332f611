"""What a heatmap costs per image, on this machine.

``python -m benchmarks.heatmap [--images DIR] [--repeats N] [--out docs/benchmarks]`` measures, on the
real full-size HAM10000 images (each reduced to the model's 224x224 input by the shared preprocessing):

* the model call at batch 1 asking for the probabilities only, and for the probabilities and
  ``class_maps`` (the extra graph work: one transpose, a 1280x7 matmul per cell);
* the overlay PNG alone (`inference.cam.overlay_png`), and what the first view of a heatmap does
  (`CaseService.heatmap`): reduce the stored JPEG to the model's input, draw the top class's overlay
  (`inference.cam.heatmap_png`), seal it (AES-GCM) and write it to a local blob store (with its fsync),
  per image; later views only read and decrypt it, and a submission only keeps the 7x7 map;
and writes ``heatmap.json`` and ``heatmap.md`` (medians, p90, the PNG size; machine and load named).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

MODEL = "ham10000_mobilenetv2"


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
    }


def run(images: np.ndarray, encoded: list[bytes], repository: Path, repeats: int) -> dict:
    from backend.crypto.envelope import _seal
    from backend.inference.cam import heatmap_png, overlay_png
    from backend.inference.onnx import OnnxClassifier
    from backend.storage.local import LocalBlobStore

    clf = OnnxClassifier(repository, MODEL, threads=2)
    session = clf._session  # the same loaded model, asked for one or both outputs
    feed = clf._input_name
    probs_only, both = [], []
    for _ in range(repeats):
        for img in images:
            for names, out in ((["probabilities"], probs_only), (["probabilities", "class_maps"], both)):
                start = time.perf_counter()
                session.run(names, {feed: img[None]})
                out.append((time.perf_counter() - start) * 1000)
    predictions = clf.predict_batch(images)
    render = []
    for _ in range(repeats):
        for img, pred in zip(images, predictions, strict=True):
            start = time.perf_counter()
            overlay_png(img, pred.class_map)
            render.append((time.perf_counter() - start) * 1000)
    key, folder = os.urandom(32), f"patients/{uuid.uuid4()}/images"
    with tempfile.TemporaryDirectory() as tmp:
        blobs = LocalBlobStore(tmp)
        blobs.put(f"{folder}/first", b"")  # the patient's folder exists (its images were stored first)
        per_image, sizes = [], []
        for _ in range(repeats):
            for jpeg, pred in zip(encoded, predictions, strict=True):
                start = time.perf_counter()
                name = f"{folder}/{uuid.uuid4().hex}.heatmap.png.enc"
                blobs.put(name, _seal(key, heatmap_png(jpeg, pred.class_map), name.encode()))
                per_image.append((time.perf_counter() - start) * 1000)
                sizes.append(len(blobs.get(name)))
    return {
        "images": len(images),
        "repeats": repeats,
        "inference_batch1_probabilities_only": _ms(probs_only),
        "inference_batch1_with_class_maps": _ms(both),
        "class_maps_extra_ms": round(statistics.median(both) - statistics.median(probs_only), 2),
        "heatmap_render_png_only": _ms(render),
        "heatmap_render_seal_store": _ms(per_image),
        "heatmap_sealed_kb_median": round(statistics.median(sizes) / 1000, 1),
    }


def main(argv: list[str] | None = None) -> None:
    from backend.inference.preprocess import load_image
    from benchmarks.triton import machine_description
    from training.paths import REPO_ROOT, shared_dir

    p = argparse.ArgumentParser(prog="python -m benchmarks.heatmap", description=__doc__.split("\n")[0])
    p.add_argument("--images", type=Path, default=shared_dir() / "data" / "ham10000" / "full_size")
    p.add_argument("--repository", type=Path, default=REPO_ROOT / "model_repository")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    args = p.parse_args(argv)
    files = sorted(args.images.glob("*.jpg"))
    images = np.stack([load_image(f) for f in files])
    result = {
        "machine": machine_description(),
        **run(images, [f.read_bytes() for f in files], args.repository, args.repeats),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "heatmap.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    rows = [
        ("model call, batch 1, probabilities only", result["inference_batch1_probabilities_only"]),
        ("model call, batch 1, probabilities + class_maps", result["inference_batch1_with_class_maps"]),
        ("heatmap: render the overlay PNG only", result["heatmap_render_png_only"]),
        (
            "first view: the stored JPEG to the model input, overlay PNG, seal, durable write (per image)",
            result["heatmap_render_seal_store"],
        ),
    ]
    lines = [
        "# Heatmap cost per image",
        "",
        f"`python -m benchmarks.heatmap` on {result['images']} full-size HAM10000 images x {result['repeats']}.",
        (
            f"Machine: {m.get('cpu')}, {m.get('cores')} cores, vector extensions: {m['vector_extensions']}; "
            f"load average {m['loadavg']} (shared with other work)."
        ),
        "",
        "| step | median ms | p90 ms |",
        "|---|---|---|",
        *[f"| {name} | {r['median_ms']} | {r['p90_ms']} |" for name, r in rows],
        "",
        (
            f"Extra model time for the class maps: {result['class_maps_extra_ms']} ms (median difference); "
            f"sealed PNG {result['heatmap_sealed_kb_median']} KB per image."
        ),
        "",
    ]
    (args.out / "heatmap.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
