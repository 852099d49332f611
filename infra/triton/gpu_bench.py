#!/usr/bin/env python3
"""Short, prepared GPU measurement of model.onnx with ONNX Runtime's TensorRT / CUDA providers.

For a machine with an NVIDIA GPU and ``onnxruntime-gpu`` (CUDA 12) installed; nothing of DermaLink is
imported, so it runs in a bare venv or inside NVIDIA's container. Prints one JSON document: the card
(nvidia-smi), the providers actually used, per batch size p50/p99 latency and images/s, and the largest
difference from the CPU provider's probabilities (FP16 TensorRT differs more than 1e-5: compare top-1).

    python infra/triton/gpu_bench.py model_repository/ham10000_mobilenetv2/1/model.onnx \
        --providers tensorrt,cuda,cpu --batches 1,8,32 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

import numpy as np
import onnxruntime as ort

PROVIDERS = {
    "tensorrt": (
        "TensorrtExecutionProvider",
        {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": "/tmp/trt_cache"},
    ),
    "cuda": ("CUDAExecutionProvider", {}),
    "cpu": ("CPUExecutionProvider", {}),
}


def card() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no GPU visible (nvidia-smi unavailable)"


def session(path: str, name: str) -> ort.InferenceSession:
    names = dict.fromkeys([name, *(["cuda"] if name == "tensorrt" else []), "cpu"])  # ordered, no duplicates
    chain = [PROVIDERS[n] for n in names]
    return ort.InferenceSession(path, providers=[p for p, _ in chain], provider_options=[o for _, o in chain])


def measure(sess: ort.InferenceSession, x: np.ndarray, seconds: float) -> dict:
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(5):
        sess.run(None, feed)  # warm-up (TensorRT builds its engine on the first call)
    lat, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(lat) < 10:
        t0 = time.perf_counter()
        sess.run(None, feed)
        lat.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - start
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "images_per_s": len(lat) * len(x) / total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--providers", default="tensorrt,cuda,cpu")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(max(batches), 224, 224, 3), dtype=np.uint8)
    cpu = session(args.model, "cpu")
    reference = cpu.run(None, {cpu.get_inputs()[0].name: data})[0]
    report = {
        "card": card(),
        "onnxruntime": ort.__version__,
        "available": ort.get_available_providers(),
        "runs": [],
    }
    for name in args.providers.split(","):
        try:
            sess = session(args.model, name)
        except Exception as exc:  # noqa: BLE001 - report a provider that cannot start, go on
            report["runs"].append({"provider": name, "error": str(exc)})
            continue
        probs = sess.run(None, {sess.get_inputs()[0].name: data})[0]
        run = {
            "provider": name,
            "used": sess.get_providers(),
            "max_abs_diff_vs_cpu": float(np.abs(probs - reference).max()),
            "top1_agreement_vs_cpu": float((probs.argmax(1) == reference.argmax(1)).mean()),
            "batches": {b: measure(sess, data[:b], args.seconds) for b in batches},
        }
        if PROVIDERS[name][0] not in sess.get_providers():
            run["warning"] = (
                f"{PROVIDERS[name][0]} did not start: these numbers are from {sess.get_providers()[0]}"
            )
        report["runs"].append(run)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
