"""Test-time augmentation inside the exported ONNX graph: the 8 dihedral views of each image, averaged.

:func:`add_tta` rewrites a classifier ``image [N, H, W, 3] -> probabilities [N, K]`` into one that builds
the 8 flips/transposes of every image in the graph (``Slice`` with step -1, ``Transpose``), runs the
original network once on the ``[8N, H, W, 3]`` batch, and returns the average of the 8 probability
vectors (arithmetic, or geometric: ``softmax(mean(log p))``), optionally re-calibrated with a temperature
(``/ T`` before the softmax: averaging changes the confidence, so the temperature is refitted on
validation for the averaged output).
Clients and the Triton config see the same input and output as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INT64_MIN = np.iinfo(np.int64).min


def add_tta(
    model_path: Path, out_path: Path, temperature: float | None = None, average: str = "mean"
) -> Path:
    """``average``: ``"mean"`` of the probabilities, or ``"geo"``: softmax of the mean log-probability
    (what validation chose for v1, see docs/model/V2_GROUNDWORK.md); ``temperature`` divides the log
    of the average before the softmax."""
    if average not in ("mean", "geo"):
        raise ValueError(f"average must be 'mean' or 'geo', got {average!r}")
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    g = model.graph
    extra = list(g.output)[1:]  # e.g. class_maps: they would come out per view ([8N, ...]), not per image
    for output in extra:
        g.output.remove(output)  # ONNX Runtime then skips the nodes that only fed it
    (inp,) = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
    out = g.output[0]
    name, out_name = inp.name, out.name
    views_in, probs_views = "tta/views", "tta/probabilities_views"
    for node in g.node:  # the network now reads the stacked views and writes the per-view probabilities
        node.input[:] = [views_in if i == name else i for i in node.input]
        node.output[:] = [probs_views if o == out_name else o for o in node.output]

    def const(cname: str, values) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), cname))
        return cname

    const("tta/minus1", [-1])
    const("tta/int_min", [INT64_MIN])
    const("tta/step", [-1])
    const("tta/axis_h", [1])
    const("tta/axis_w", [2])
    const("tta/shape", [8, -1, int(out.type.tensor_type.shape.dim[-1].dim_value)])
    nodes = [helper.make_node("Transpose", [name], ["tta/t"], perm=[0, 2, 1, 3], name="tta/transpose")]
    views = []
    for src in (name, "tta/t"):
        tag = "x" if src == name else "t"
        fw = f"tta/{tag}_fw"
        fh = f"tta/{tag}_fh"
        fhw = f"tta/{tag}_fhw"
        nodes += [
            helper.make_node(
                "Slice", [src, "tta/minus1", "tta/int_min", "tta/axis_w", "tta/step"], [fw], name=fw
            ),
            helper.make_node(
                "Slice", [src, "tta/minus1", "tta/int_min", "tta/axis_h", "tta/step"], [fh], name=fh
            ),
            helper.make_node(
                "Slice", [fw, "tta/minus1", "tta/int_min", "tta/axis_h", "tta/step"], [fhw], name=fhw
            ),
        ]
        views += [src, fw, fh, fhw]
    nodes.append(helper.make_node("Concat", views, [views_in], axis=0, name="tta/concat"))
    by_view = probs_views
    tail = []
    if average == "geo":
        tail.append(helper.make_node("Log", [probs_views], ["tta/log_views"], name="tta/log_views"))
        by_view = "tta/log_views"
    tail.append(helper.make_node("Reshape", [by_view, "tta/shape"], ["tta/by_view"], name="tta/reshape"))
    tail.append(
        helper.make_node("ReduceMean", ["tta/by_view"], ["tta/mean"], axes=[0], keepdims=0, name="tta/mean")
    )
    log_avg = "tta/mean"
    if average == "mean":
        if temperature is None:
            tail[-1].output[0] = out_name
        else:
            tail.append(helper.make_node("Log", ["tta/mean"], ["tta/log"], name="tta/log"))
            log_avg = "tta/log"
    if average == "geo" or temperature is not None:
        scaled = log_avg
        if temperature is not None:
            g.initializer.append(
                numpy_helper.from_array(np.array(temperature, np.float32), "tta/temperature")
            )
            tail.append(
                helper.make_node("Div", [log_avg, "tta/temperature"], ["tta/scaled"], name="tta/scale")
            )
            scaled = "tta/scaled"
        tail.append(helper.make_node("Softmax", [scaled], [out_name], axis=-1, name="tta/softmax"))
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old + tail)
    onnx.checker.check_model(model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path
