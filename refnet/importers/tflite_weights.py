"""Float .tflite -> weight store. The weighted ops (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED) are taken in execution order and matched, by shape, onto the layers of the
MobileNet definitions (batch norm is already folded in a converted model, so their filters and
biases are refnet's stored tensors, after the layout change OHWI -> HWIO, [1,kh,kw,C] ->
[kh,kw,C,1], FC [out,in] -> [1,1,in,out]). Works for refnet-written models, TF-converted Keras
models and the seed's float .tflite files alike: tensor names are not needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from ..models import ArchSpec, FAMILIES, get_net
from ..models.spec import SE_GATE_SCALE_KERAS, SE_GATE_SCALE_SLIM
from ..weights_store import WeightStore, provenance_for
from .common import DM_CANDIDATES

IMPORTER_VERSION = "1"
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _weighted_ops(graph, path):
    out = []
    for op in graph.ops:
        if op.kind not in WEIGHTED:
            continue
        f = graph.tensors[op.inputs[1]]
        if f.data is None or f.dtype != np.float32:
            raise ModelFormatError(f"{path}: {op.describe()} has a non-constant or non-float32 "
                                   f"filter: only float .tflite models can be imported")
        w = f.data
        if op.kind == "FULLY_CONNECTED":
            w = w.T.reshape(1, 1, w.shape[1], w.shape[0])
        else:
            w = np.transpose(w, (1, 2, 3, 0))
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        b = graph.tensors[op.inputs[2]].data if has_bias else np.zeros(w.shape[3] if op.kind != "DEPTHWISE_CONV_2D" else w.shape[2], np.float32)
        act = op.options.get("fused_activation_function", "NONE")
        out.append((op.kind, np.ascontiguousarray(w, np.float32), np.asarray(b, np.float32), act))
    return out


def import_tflite(path, spec: ArchSpec | None = None) -> WeightStore:
    from ..tflite_reader import read_tflite
    path = Path(path)
    graph = read_tflite(model_path=str(path))
    ops = _weighted_ops(graph, path)
    inp = graph.tensors[graph.inputs[0]]
    res = int(inp.shape[1]) if len(inp.shape) == 4 else 224
    scalars = [float(t.data) for t in graph.tensors if t.data is not None and t.data.size == 1
               and t.dtype == np.float32]
    gate = SE_GATE_SCALE_KERAS if any(np.float32(s) == np.float32(1 / 6) for s in scalars) \
        else SE_GATE_SCALE_SLIM
    softmax = any(op.kind == "SOFTMAX" for op in graph.ops)
    classes = int(ops[-1][2].shape[0]) if ops else 0
    candidates = [spec] if spec else [
        ArchSpec(a, dm, res, classes, fg, se_gate_scale=gate, softmax=softmax)
        for a in FAMILIES for dm in DM_CANDIDATES
        for fg in ((True, False) if dm < 1 else (False, True))]
    for cand in candidates:
        layers = [l for l in get_net(cand).layers if l.kind in ("conv", "depthwise")]
        if len(layers) != len(ops):
            continue
        tensors = {}
        for layer, (kind, w, b, act) in zip(layers, ops):
            if (layer.kind == "depthwise") != (kind == "DEPTHWISE_CONV_2D") or \
                    w.shape != layer.weight_shape or b.shape != (layer.cout,):
                break
            if layer.activation == "HARD_SIGMOID" and act == "RELU6":
                # TF's converter folds the gate's "+ 3" into this conv's bias and fuses the
                # ReLU6 (relu6(conv + b + 3) / 6): take the 3 back out (float32)
                b = (b - np.float32(3.0)).astype(np.float32)
            tensors[layer.weight_name] = w
            tensors[f"{layer.name}/biases"] = b
        else:
            return WeightStore(cand, tensors, provenance_for(
                path, "tflite", "refnet.importers.tflite_weights", IMPORTER_VERSION,
                notes="weighted ops matched in execution order"))
    raise ModelFormatError(f"{path}: its {len(ops)} weighted ops match no MobileNet definition")
