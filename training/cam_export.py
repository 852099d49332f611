"""Derive a CAM-capable ONNX model from an exported classifier, and check that its maps are faithful.

:func:`add_cam_output` finds the classifier head in the graph (``GlobalAveragePool`` -> ``Squeeze``/
``Flatten``/``Reshape`` -> ``MatMul`` with a constant ``[C, K]`` kernel -> ``Add`` with a constant bias)
and adds a second output ``class_maps`` ``[N, h, w, K]``: the same kernel and bias applied at every
position of the last feature map. The first output is untouched (same nodes, same name), and the
spatial mean of ``class_maps`` equals the logits, so ``softmax(mean(class_maps))`` equals the
probabilities (temperature included, since it is baked into the kernel and bias).

``python -m training.cam_export [--model M] [--out runs/cam/model_cam.onnx] [--images DIR]`` writes
the model and prints parity and the faithfulness check on the images in ``--images``; with
``--in-place`` it replaces ``--model`` by its CAM-capable version (first output checked bit-identical).
`dermalink export` (``training/export.py``) adds the output to every model it exports.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from training import MODEL_NAME
from training.export import _rel
from training.paths import REPO_ROOT, model_repository, shared_dir

CAM_OUTPUT = "class_maps"


def _producer(graph, name: str):
    return next((n for n in graph.node if name in n.output), None)


def _consumers(graph, name: str) -> list:
    return [n for n in graph.node if name in n.input]


def _spatial_dims(model, features: str) -> list[int | None]:
    """``[h, w]`` of the NCHW feature map when shape inference knows them (7x7 at 224), else unknown."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model).graph
    for info in [*inferred.value_info, *inferred.input]:
        if info.name == features:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 4:
                return [d.dim_value if d.HasField("dim_value") else None for d in dims[2:]]
    return [None, None]


def has_cam_output(model_path: Path) -> bool:
    import onnx

    return any(
        o.name == CAM_OUTPUT for o in onnx.load(str(model_path), load_external_data=False).graph.output
    )


def add_cam_output(model_path: Path, out_path: Path) -> Path:
    """Write ``model_path`` with a second output :data:`CAM_OUTPUT` to ``out_path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    g = model.graph
    if any(o.name == CAM_OUTPUT for o in g.output):
        raise ValueError(f"{model_path} already has an output {CAM_OUTPUT!r}")
    inits = {i.name: i for i in g.initializer}
    if any(n.name.startswith("tta/") or "tta/" in "".join(n.input) for n in g.node):
        raise ValueError(f"{model_path} has in-graph test-time augmentation: its feature maps are per view")
    gaps = [n for n in g.node if n.op_type == "GlobalAveragePool"]
    if len(gaps) != 1:
        raise ValueError(f"expected one GlobalAveragePool in {model_path}, found {len(gaps)}")
    gap = gaps[0]
    features = gap.input[0]  # [N, C, h, w]
    node = gap
    while True:  # walk the shape-only nodes between pooling and the dense kernel
        (nxt,) = _consumers(g, node.output[0])
        if nxt.op_type in ("Squeeze", "Flatten", "Reshape"):
            node = nxt
            continue
        break
    if nxt.op_type != "MatMul" or nxt.input[1] not in inits:
        raise ValueError(f"expected MatMul with a constant kernel after pooling, found {nxt.op_type}")
    kernel = nxt.input[1]
    (add,) = _consumers(g, nxt.output[0])
    bias = next((i for i in add.input if i in inits), None)
    if add.op_type != "Add" or bias is None:
        raise ValueError("expected an Add with a constant bias after the dense kernel")
    n_classes = int(numpy_helper.to_array(inits[kernel]).shape[1])
    grid = _spatial_dims(model, features)

    nhwc = "cam/features_nhwc"
    g.node.extend(
        [
            helper.make_node("Transpose", [features], [nhwc], perm=[0, 2, 3, 1], name="cam/transpose"),
            helper.make_node("MatMul", [nhwc, kernel], ["cam/maps_nobias"], name="cam/matmul"),
            helper.make_node("Add", ["cam/maps_nobias", bias], [CAM_OUTPUT], name="cam/bias"),
        ]
    )
    batch = g.output[0].type.tensor_type.shape.dim[0]
    dim = batch.dim_param or "batch"
    g.output.append(helper.make_tensor_value_info(CAM_OUTPUT, TensorProto.FLOAT, [dim, *grid, n_classes]))
    onnx.checker.check_model(model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path


def cam_session(path: Path, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_cam(session, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities [N, K], class_maps [N, h, w, K])`` for uint8 images."""
    name = session.get_inputs()[0].name
    probs, maps = session.run(None, {name: np.ascontiguousarray(images)})
    return probs, maps


def check_cam(reference_session, session, images: np.ndarray, batch: int = 32) -> dict[str, object]:
    """Compare a CAM-capable ``session`` with the model it was derived from on real ``images``: the first
    output against the reference (bit-identical expected) and ``softmax(mean(class_maps))`` against it."""
    ref_in, ref_out = reference_session.get_inputs()[0].name, reference_session.get_outputs()[0].name
    ref = np.concatenate(
        [
            reference_session.run([ref_out], {ref_in: images[s : s + batch]})[0]
            for s in range(0, len(images), batch)
        ]
    )
    parts = [run_cam(session, images[s : s + batch]) for s in range(0, len(images), batch)]
    probs = np.concatenate([p for p, _ in parts])
    maps = np.concatenate([m for _, m in parts])
    logits = maps.mean(axis=(1, 2))
    soft = np.exp(logits - logits.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    return {
        "n_images": len(images),
        "class_maps_shape": [int(d) for d in maps.shape[1:]],
        "first_output_bit_identical": bool(np.array_equal(probs, ref)),
        "first_output_max_abs_diff": float(np.abs(probs - ref).max()),
        "softmax_of_mean_map_max_abs_diff": float(np.abs(soft - probs).max()),
    }


def faithfulness(
    session, images: np.ndarray, cells: int = 5, draws: int = 10, seed: int = 0
) -> dict[str, object]:
    """Blank the ``cells`` hottest cells of the predicted class's 7x7 map vs ``cells`` random cells.

    Blanking fills the region with the image's mean colour. Per image, the drop in the predicted class's
    probability from blanking the hottest cells is compared with the mean drop over ``draws`` random
    sets of the same number of cells (the same area). Returns the fraction of images where the heatmap
    region hurts more, and the median drops.
    """
    from backend.inference.cam import blank_cells, top_cells

    rng = np.random.default_rng(seed)
    probs, maps = run_cam(session, images)
    pred = probs.argmax(1)
    top_imgs, rand_imgs = [], []
    grid = maps.shape[1:3]
    for i, img in enumerate(images):
        top_imgs.append(blank_cells(img, top_cells(maps[i, ..., pred[i]], cells)))
        for _ in range(draws):
            m = np.zeros(grid[0] * grid[1], bool)
            m[rng.choice(m.size, cells, replace=False)] = True
            rand_imgs.append(blank_cells(img, m.reshape(grid)))
    p_top, _ = run_cam(session, np.stack(top_imgs))
    p_rand, _ = run_cam(session, np.stack(rand_imgs))
    idx = np.arange(len(images))
    drop_top = probs[idx, pred] - p_top[idx, pred]
    drop_rand = (probs[idx, pred][:, None] - p_rand.reshape(len(images), draws, -1)[idx, :, pred]).mean(1)
    return {
        "n_images": len(images),
        "cells": cells,
        "area_fraction": cells / (grid[0] * grid[1]),
        "random_draws": draws,
        "fraction_top_hurts_more": float((drop_top > drop_rand).mean()),
        "median_drop_top": float(np.median(drop_top)),
        "median_drop_random": float(np.median(drop_rand)),
    }


def main(argv: list[str] | None = None) -> None:
    from backend.inference.preprocess import load_image

    p = argparse.ArgumentParser(prog="python -m training.cam_export", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=model_repository() / MODEL_NAME / "1" / "model.onnx")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "cam" / "model_cam.onnx")
    p.add_argument("--images", type=Path, default=shared_dir() / "data" / "ham10000" / "full_size")
    p.add_argument("--overlays", type=int, default=3, help="write this many overlay PNGs next to --out")
    p.add_argument(
        "--in-place",
        action="store_true",
        help="replace --model by its CAM-capable version once the first output is bit-identical "
        "(how the shipped v1 got its second output); no faithfulness run, no overlays",
    )
    args = p.parse_args(argv)
    from backend.inference.cam import overlay_png
    from training.export import onnx_session

    files = sorted(args.images.glob("*.jpg"))
    images = np.stack([load_image(f) for f in files])
    if args.in_place:
        with tempfile.TemporaryDirectory(dir=args.model.parent) as tmp:
            path = add_cam_output(args.model, Path(tmp) / "model.onnx")
            report = check_cam(onnx_session(args.model), cam_session(path), images)
            if not report["first_output_bit_identical"]:
                raise SystemExit(f"first output changed, {args.model} left alone: {report}")
            path.replace(args.model)
        print(json.dumps({"model": _rel(args.model), **report}, indent=2))
        return
    path = add_cam_output(args.model, args.out)
    sess = cam_session(path)
    report = {"model": str(path), **check_cam(onnx_session(args.model), sess, images)}
    report["faithfulness"] = faithfulness(sess, images)
    probs, maps = run_cam(sess, images)
    for f, img, m, c in list(zip(files, images, maps, probs.argmax(1), strict=True))[: args.overlays]:
        (path.parent / f"{f.stem}_cam.png").write_bytes(overlay_png(img, m[..., c]))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
