"""Triton python-backend model that runs ``model.onnx`` with ONNX Runtime (the CPU serving path).

Copied as ``<version>/model.py`` into the derived repository by `triton_repo.derive_model`; it runs
inside Triton's python backend stub (Triton's own virtualenv: numpy < 2, onnxruntime), so it imports
nothing from DermaLink. Tensor names come from the model config, which was derived from the ONNX graph:
every output the config lists (the probabilities and, for a CAM-capable model, ``class_maps``) is
computed and returned; Triton passes on those a request asks for.

Dynamic batching hands ``execute`` several requests at once: they are concatenated into one ONNX
Runtime call and the result is split back, so batching on the server really batches the model.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        path = os.path.join(
            args["model_repository"], args["model_version"], params.get("onnx_file") or "model.onnx"
        )
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads") or 0)
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        graph_inputs = {i.name for i in self.session.get_inputs()}
        if set(self.input_names) != graph_inputs:
            raise pb_utils.TritonModelException(
                f"config inputs {self.input_names} do not match the ONNX graph's {sorted(graph_inputs)}"
            )

    def execute(self, requests):
        arrays, sizes, responses = {n: [] for n in self.input_names}, [], [None] * len(requests)
        good = []
        for i, request in enumerate(requests):
            try:
                tensors = {
                    n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.input_names
                }
            except Exception as exc:  # noqa: BLE001 - Triton validates shapes and types before this; be safe anyway
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"bad input: {exc}"))
                continue
            for n, t in tensors.items():
                arrays[n].append(t)
            sizes.append(len(next(iter(tensors.values()))))
            good.append(i)
        if good:
            feed = {n: np.concatenate(a) if len(a) > 1 else a[0] for n, a in arrays.items()}
            try:
                results = self.session.run(self.output_names, feed)
            except Exception as exc:  # noqa: BLE001 - reported to the client
                error = pb_utils.TritonError(f"ONNX Runtime failed: {exc}")
                for i in good:
                    responses[i] = pb_utils.InferenceResponse(error=error)
                return responses
            offsets = np.cumsum([0] + sizes)
            for k, i in enumerate(good):
                lo, hi = offsets[k], offsets[k + 1]
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor(n, np.ascontiguousarray(r[lo:hi]))
                        for n, r in zip(self.output_names, results)
                    ]
                )
        return responses

    def finalize(self):
        self.session = None
