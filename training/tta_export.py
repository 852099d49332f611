"""Test-time augmentation inside the exported ONNX graph: the 8 dihedral views of each image, averaged.

:func:`add_tta` rewrites a classifier ``image [N, H, W, 3] -> probabilities [N, K]`` into one that builds
the 8 flips/transposes of every image in the graph (``Slice`` with step -1, ``Transpose``), runs the
original network once on the ``[8N, H, W, 3]`` batch, and returns the mean of the 8 probability vectors,
optionally re-calibrated with a temperature (``softmax(log(mean) / T)``: averaging makes the
probabilities less confident, so the temperature is refitted on validation for the averaged output).
Clients and the Triton config see the same input and output as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INT64_MIN = np.iinfo(np.int64).min


def add_tta(model_path: Path, out_path: Path, temperature: float | None = None) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    g = model.graph
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
    tail = [
        helper.make_node("Reshape", [probs_views, "tta/shape"], ["tta/by_view"], name="tta/reshape"),
    ]
    mean = out_name if temperature is None else "tta/mean"
    tail.append(
        helper.make_node("ReduceMean", ["tta/by_view"], [mean], axes=[0], keepdims=0, name="tta/mean")
    )
    if temperature is not None:
        g.initializer.append(numpy_helper.from_array(np.array(temperature, np.float32), "tta/temperature"))
        tail += [
            helper.make_node("Log", [mean], ["tta/log"], name="tta/log"),
            helper.make_node("Div", ["tta/log", "tta/temperature"], ["tta/scaled"], name="tta/scale"),
            helper.make_node("Softmax", ["tta/scaled"], [out_name], axis=-1, name="tta/softmax"),
        ]
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old + tail)
    onnx.checker.check_model(model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path
