"""MACs and parameters of an architecture spec, in the seed's convention.

MACs: multiply-accumulates of the convolutions (conv, depthwise, logits; the squeeze-excite 1x1
convolutions included), one image. Element-wise work (bias, activations, residual adds, the
squeeze-excite gate, pooling, softmax) is not counted: the seed's MAdds count only the
multiply-accumulates of the weight layers.

Params (`params`, the seed's convention): the checkpoint's weight and bias variables
(`*/weights`, `*/depthwise_weights`, `*/biases`); batch-norm variables are not counted. This
reproduces every MobileNet V2 row of the seed's table to 0.3 %. Also reported:
`params_folded` (the inference model after batch-norm folding: weights plus one bias per output
channel of every layer, what refnet's weight store and a float .tflite hold) and
`params_checkpoint` (every variable including gamma/beta/moving mean/variance, what
keras `count_params()` reports).

Rounding: the seed publishes MACs truncated to whole millions (582.2 -> 582, 11.94 -> 11; every
V2 row fits floor(), several do not fit round()) and parameters to 2 (V2) or 1 (V3) decimals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import Layer, Net


@dataclass
class LayerCount:
    name: str
    kind: str
    macs: int
    params: int


def layer_counts(net: Net) -> list[LayerCount]:
    rows = []
    for layer in net.layers:
        rows.append(LayerCount(layer.name, layer.kind, layer_macs(layer), layer_params(layer)))
    return rows


def layer_macs(layer: Layer) -> int:
    if layer.kind == "dense":
        return int(np.prod(layer.out_shape[:-1], dtype=np.int64)) * layer.cin * layer.cout
    if layer.kind not in ("conv", "depthwise"):
        return 0
    h, w, _ = layer.out_shape
    kh, kw = layer.kernel
    if layer.kind == "conv":
        return h * w * layer.cout * kh * kw * layer.cin
    if layer.kind == "depthwise":
        return h * w * layer.cin * kh * kw
    return 0


def layer_params(layer: Layer) -> int:
    return sum(int(np.prod(s)) for s in layer.folded_variables().values())


def elementwise_ops(net: Net) -> int:
    """Element-wise work the MAC count leaves out (bias adds, activations, residual adds,
    squeeze-excite gates, pooling sums, softmax): one per output element of each layer."""
    total = 0
    for layer in net.layers:
        if layer.kind == "global_pool":
            total += layer.kernel[0] * layer.kernel[1] * layer.out_shape[-1]
        elif layer.kind not in ("squeeze", "reshape"):
            total += int(np.prod(layer.out_shape, dtype=np.int64))
    return total


def count(net: Net) -> dict:
    rows = layer_counts(net)
    variables = net.variables()
    seed = sum(int(np.prod(s)) for k, s in variables.items() if "/BatchNorm/" not in k)
    return {"macs": sum(r.macs for r in rows), "params": seed,
            "params_folded": sum(r.params for r in rows),
            "params_checkpoint": sum(int(np.prod(s)) for s in variables.values())}
