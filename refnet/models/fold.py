"""Batch-norm folding: slim variables (weights + BatchNorm/*) -> refnet's weights + biases.

For a conv/depthwise layer followed by inference-mode batch norm

    y = gamma * (conv(x, W) + b0 - moving_mean) / sqrt(moving_variance + eps) + beta

refnet stores the equivalent single convolution

    scale   = gamma / sqrt(moving_variance + eps)          (per output channel)
    W'      = W * scale       (conv: on the last, cout, axis of HWIO; depthwise: on cin,
                               the output channel of a depth-multiplier-1 depthwise)
    biases  = beta + (b0 - moving_mean) * scale            (b0 = 0 when the conv has no bias)

computed in float64 from the float32 variables and rounded to float32 once at the end.
eps is 1e-3 for every MobileNet (slim's and Keras's default for these models) unless the
source says otherwise. Layers without batch norm (logits, squeeze-excite, V3's Conv_2) keep their
weights and biases unchanged (bit for bit).

A Keras head's and preprocessing's per-channel affine layers (refnet.models.spec, scale_shift)
become y = x * scale + shift: BatchNormalization scale = gamma / sqrt(moving_variance + eps),
shift = beta - moving_mean * scale (as Keras's inference batch norm); Normalization
scale = 1 / max(sqrt(variance), 1e-7), shift = -mean * scale (Keras's epsilon); Rescaling its own
float32 scale and offset, unchanged (so x * scale + offset is Keras's arithmetic exactly).
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidModelError
from .spec import BN_EPSILON, Layer, Net

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization's floor on the standard deviation


def fold_layer(weights: np.ndarray, gamma, beta, mean, variance, bias=None,
               epsilon: float = BN_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(weights, np.float64)
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    b0 = np.zeros_like(scale) if bias is None else np.asarray(bias, np.float64)
    if w.ndim == 4 and w.shape[3] == 1 and w.shape[2] == scale.size and scale.size != 1:
        folded = w * scale[None, None, :, None]  # depthwise [kh, kw, C, 1]
    else:
        folded = w * scale  # broadcast on the last (cout) axis
    new_bias = np.asarray(beta, np.float64) + (b0 - np.asarray(mean, np.float64)) * scale
    return folded.astype(np.float32), new_bias.astype(np.float32)


def fold(net: Net, variables: dict[str, np.ndarray], epsilon: float = BN_EPSILON,
         source: str = "<variables>") -> dict[str, np.ndarray]:
    """slim-named unfolded variables -> refnet's folded tensors (every name of
    net.folded_variables(), shapes checked)."""
    out: dict[str, np.ndarray] = {}
    for layer in net.layers:
        if layer.kind not in ("conv", "depthwise", "dense", "scale_shift"):
            continue
        need = layer.variables()
        missing = [k for k in need if k not in variables]
        if missing:
            raise InvalidModelError(f"{source}: missing variable(s) for layer {layer.name}: "
                                    f"{', '.join(missing)}")
        for k, shape in need.items():
            got = tuple(np.shape(variables[k]))
            if got != tuple(shape):
                raise InvalidModelError(f"{source}: variable {k} has shape {got}, the "
                                        f"architecture needs {tuple(shape)}")
        if layer.kind == "scale_shift":
            out.update(_fold_scale_shift(layer, variables))
            continue
        if layer.kind == "dense":
            out[layer.weight_name] = np.asarray(variables[layer.weight_name], np.float32)
            out[f"{layer.name}/biases"] = np.asarray(variables.get(f"{layer.name}/biases", np.zeros(layer.cout)),
                                                     np.float32)
            continue
        w = variables[layer.weight_name]
        if layer.norm == "batch_norm":
            p = f"{layer.name}/BatchNorm/"
            w2, b2 = fold_layer(w, variables[p + "gamma"], variables[p + "beta"],
                                variables[p + "moving_mean"], variables[p + "moving_variance"],
                                epsilon=epsilon)
        else:
            w2 = np.asarray(w, np.float32)
            b2 = np.asarray(variables[f"{layer.name}/biases"], np.float32)
        out[layer.weight_name] = w2
        out[f"{layer.name}/biases"] = b2
    return out


def _fold_scale_shift(layer: Layer, variables: dict) -> dict[str, np.ndarray]:
    c, source, name = layer.cout, layer.config["source"], layer.name
    shape = (c,) if layer.config.get("per_channel", True) else ()
    if source == "rescaling":
        scale = np.broadcast_to(np.asarray(layer.config.get("scale", 1.0), np.float32), shape)
        shift = np.broadcast_to(np.asarray(layer.config.get("offset", 0.0), np.float32), shape)
        return {f"{name}/scale": scale.copy(), f"{name}/shift": shift.copy()}
    v = {k.rsplit("/", 1)[1]: np.asarray(a, np.float64).reshape(-1) for k, a in variables.items()
         if k.startswith(name + "/")}
    if source == "batch_norm":
        eps = float(layer.config.get("epsilon", BN_EPSILON))
        scale = v.get("gamma", np.ones(c)) / np.sqrt(v["moving_variance"] + eps)
        shift = v.get("beta", np.zeros(c)) - v["moving_mean"] * scale
    elif source == "normalization":
        scale = 1.0 / np.maximum(np.sqrt(v["variance"]), KERAS_EPSILON)
        shift = -v["mean"] * scale
    else:
        raise AssertionError(source)
    return {f"{name}/scale": scale.astype(np.float32), f"{name}/shift": shift.astype(np.float32)}


def random_variables(net: Net, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded unfolded variables with sane statistics (He-scaled weights, BN near identity),
    so a random network's activations stay in a realistic range through all its layers."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for layer in net.layers:
        for name, shape in layer.variables().items():
            if name.endswith("weights"):
                fan_in = shape[0] if len(shape) == 2 else \
                    shape[0] * shape[1] * (1 if layer.kind == "depthwise" else shape[2])
                v = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            elif name.endswith("gamma"):
                v = rng.uniform(0.5, 1.5, shape)
            elif name.endswith("beta") or name.endswith("biases"):
                v = rng.normal(0.0, 0.1, shape)
            elif name.endswith("moving_mean"):
                v = rng.normal(0.0, 0.1, shape)
            elif name.endswith("/mean"):
                v = rng.normal(0.0, 0.5, shape)
            elif name.endswith("/variance"):
                v = rng.uniform(0.2, 2.0, shape)
            elif name.endswith("moving_variance"):
                v = rng.uniform(0.5, 2.0, shape)
            else:
                raise AssertionError(name)
            out[name] = v.astype(np.float32)
    return out
