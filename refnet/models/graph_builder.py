"""Net (layer list) + folded weights -> float32 refnet Graph, executable by refnet.Interpreter
and serializable with refnet.tflite_writer.write_tflite.

Op mapping (TFLite builtins, options as refnet.tflite_reader reads them):
  conv        CONV_2D (SAME) with the activation fused when it is RELU / RELU6; HARD_SWISH is a
              separate HARD_SWISH op; the squeeze-excite gate (hard sigmoid) is
              ADD(+3, fused RELU6) then MUL(x scale) with scale = spec.se_gate_scale
  depthwise   DEPTHWISE_CONV_2D (SAME, depth_multiplier 1), filter [1, kh, kw, C]
  global_pool MEAN over axes (1, 2), keep_dims
  add / mul   ADD / MUL
  squeeze     RESHAPE to [1, num_classes]
  softmax     SOFTMAX (beta 1)
A Keras head / preprocessing (spec.head, spec.preprocess):
  scale_shift MUL(x, scale) then ADD(+ shift): Rescaling, Normalization, a head's BatchNormalization
  dense       FULLY_CONNECTED, weights [cout, cin], RELU / RELU6 fused
  activation  SOFTMAX, LOGISTIC (sigmoid), HARD_SWISH, RELU, RELU6, or LOGISTIC + MUL (swish)
  reshape     RESHAPE to [-1, ...] (Flatten, Reshape: any batch)
  global_pool MEAN over (1, 2), keep_dims as Keras's GlobalAveragePooling2D(keepdims=)
Tensor names: each layer's output tensor carries the layer's (slim) name; its constant tensors
are named after the stored variables (<layer>/weights, <layer>/depthwise_weights,
<layer>/biases).
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidModelError
from ..graph import Graph
from ..tflite_writer import ModelBuilder
from .spec import Net

F32 = np.float32


def build_graph(net: Net, weights: dict[str, np.ndarray], source: str = "<refnet.models>") -> Graph:
    """`weights`: folded tensors (net.folded_variables() names, slim HWIO layout)."""
    need = net.folded_variables()
    for name, shape in need.items():
        if name not in weights:
            raise InvalidModelError(f"{source}: no tensor '{name}' for {net.spec.arch}")
        if tuple(np.shape(weights[name])) != tuple(shape):
            raise InvalidModelError(f"{source}: tensor '{name}' has shape "
                                    f"{tuple(np.shape(weights[name]))}, {net.spec.arch} needs {shape}")
    mb = ModelBuilder()
    r = net.spec.resolution
    ids = {"input": mb.input("input", (1, r, r, 3), F32)}

    def const(name, value, dtype=F32):
        value = np.asarray(value, dtype)
        return mb.tensor(name, value.shape, dtype, data=value)

    def act(name, shape):
        return mb.tensor(name, (1,) + tuple(shape), F32)

    for layer in net.layers:
        x = [ids[i] for i in layer.inputs]
        if layer.kind in ("conv", "depthwise"):
            w = np.asarray(weights[layer.weight_name], F32)
            b = const(f"{layer.name}/biases", weights[f"{layer.name}/biases"])
            fused = layer.activation if layer.activation in ("RELU", "RELU6") else "NONE"
            common = dict(padding="SAME", stride_h=layer.stride, stride_w=layer.stride,
                          dilation_hfactor=1, dilation_wfactor=1, fused_activation_function=fused)
            pre_name = layer.name if fused == layer.activation else f"{layer.name}/conv"
            y = act(pre_name, layer.out_shape)
            if layer.kind == "conv":
                f = const(layer.weight_name, np.transpose(w, (3, 0, 1, 2)))  # HWIO -> OHWI
                mb.op("CONV_2D", [x[0], f, b], [y], **common)
            else:
                f = const(layer.weight_name, np.transpose(w, (3, 0, 1, 2)))  # [kh,kw,C,1] -> [1,kh,kw,C]
                mb.op("DEPTHWISE_CONV_2D", [x[0], f, b], [y], depth_multiplier=1, version=2, **common)
            if layer.activation == "HARD_SWISH":
                z = act(layer.name, layer.out_shape)
                mb.op("HARD_SWISH", [y], [z])
                y = z
            elif layer.activation == "HARD_SIGMOID":
                three = const(f"{layer.name}/hard_sigmoid/add_y", np.array(3.0, F32).reshape(()))
                t = act(f"{layer.name}/hard_sigmoid/relu6", layer.out_shape)
                mb.op("ADD", [y, three], [t], fused_activation_function="RELU6")
                scale = const(f"{layer.name}/hard_sigmoid/mul_y",
                              np.array(net.spec.se_gate_scale, F32).reshape(()))
                z = act(layer.name, layer.out_shape)
                mb.op("MUL", [t, scale], [z], fused_activation_function="NONE")
                y = z
            ids[layer.name] = y
        elif layer.kind == "global_pool":
            axes = const(f"{layer.name}/reduction_indices", np.array([1, 2], np.int32), np.int32)
            y = act(layer.name, layer.out_shape)
            mb.op("MEAN", [x[0], axes], [y], keep_dims=layer.config.get("keepdims", True))
            ids[layer.name] = y
        elif layer.kind == "scale_shift":
            scale = const(f"{layer.name}/scale", weights[f"{layer.name}/scale"])
            shift = const(f"{layer.name}/shift", weights[f"{layer.name}/shift"])
            t = act(f"{layer.name}/mul", layer.out_shape)
            mb.op("MUL", [x[0], scale], [t], fused_activation_function="NONE")
            y = act(layer.name, layer.out_shape)
            mb.op("ADD", [t, shift], [y], fused_activation_function="NONE")
            ids[layer.name] = y
        elif layer.kind == "dense":
            w = const(layer.weight_name, np.asarray(weights[layer.weight_name], F32).T)  # [cin, cout] -> [cout, cin]
            b = const(f"{layer.name}/biases", weights[f"{layer.name}/biases"])
            fused = layer.activation if layer.activation in ("NONE", "RELU", "RELU6") else "NONE"
            y = act(layer.name if fused == layer.activation else f"{layer.name}/linear", layer.out_shape)
            mb.op("FULLY_CONNECTED", [x[0], w, b], [y], fused_activation_function=fused,
                  keep_num_dims=len(layer.out_shape) > 1)
            ids[layer.name] = y if fused == layer.activation else \
                _activation(mb, const, act, y, layer.activation, layer.name, layer.out_shape)
        elif layer.kind == "activation":
            ids[layer.name] = _activation(mb, const, act, x[0], layer.activation, layer.name, layer.out_shape)
        elif layer.kind == "reshape":
            shape = const(f"{layer.name}/shape", np.array((-1,) + tuple(layer.out_shape), np.int32), np.int32)
            y = act(layer.name, layer.out_shape)
            mb.op("RESHAPE", [x[0], shape], [y])
            ids[layer.name] = y
        elif layer.kind in ("add", "mul"):
            y = act(layer.name, layer.out_shape)
            mb.op(layer.kind.upper(), x, [y], fused_activation_function="NONE")
            ids[layer.name] = y
        elif layer.kind == "squeeze":
            shape = const(f"{layer.name}/shape", np.array([1, layer.cout], np.int32), np.int32)
            y = mb.tensor(layer.name, (1, layer.cout), F32)
            mb.op("RESHAPE", [x[0], shape], [y])
            ids[layer.name] = y
        elif layer.kind == "softmax":
            y = mb.tensor(layer.name, (1, layer.cout), F32)
            mb.op("SOFTMAX", x, [y], beta=1.0)
            ids[layer.name] = y
        else:
            raise AssertionError(layer.kind)
    mb.outputs.append(ids[net.layers[-1].name] if net.layers else ids["input"])
    g = mb.graph()
    g.source = source
    s = net.spec
    g.description = (f"refnet {s.arch} dm={s.depth_multiplier} res={s.resolution} "
                     f"classes={s.num_classes}")
    return g


def _activation(mb, const, act, x: int, activation: str, name: str, shape) -> int:
    """A head's activation as its own op(s); the output tensor carries the layer's name."""
    y = act(name, shape)
    if activation == "SOFTMAX":
        mb.op("SOFTMAX", [x], [y], beta=1.0)
    elif activation in ("LOGISTIC", "HARD_SWISH", "RELU", "RELU6"):
        mb.op(activation, [x], [y])
    elif activation == "SWISH":  # Keras's silu: x * sigmoid(x)
        s = act(f"{name}/sigmoid", shape)
        mb.op("LOGISTIC", [x], [s])
        mb.op("MUL", [x, s], [y], fused_activation_function="NONE")
    else:
        raise AssertionError(activation)
    return y
