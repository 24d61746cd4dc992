"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED single-op models vs LiteRT BUILTIN_REF.

Randomized over kernel sizes, strides, dilations, paddings, activations, groups, zero points
(range ends included) and scales; float32, int8 per-channel and uint8 per-tensor.
"""
import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input

ACTIVATIONS = ["NONE", "RELU", "RELU6"]
QTYPES = {"int8": np.int8, "uint8": np.uint8}


def _zero_point(rng, dtype):
    info = np.iinfo(dtype)
    return int(rng.choice([info.min, info.max, 0 if dtype == np.int8 else 128,
                           rng.integers(info.min, info.max + 1)]))


def _qtensor_weights(rng, dtype, shape, per_channel_axis):
    """Weights with realistic spread; uint8 per-tensor with a nonzero zero point, int8 per-channel."""
    if dtype == np.uint8:
        zp = int(rng.integers(0, 256))
        return rng.integers(0, 256, size=shape).astype(np.uint8), np.float32(rng.uniform(0.001, 0.05)), zp, 0
    n = shape[per_channel_axis]
    scales = rng.uniform(0.0005, 0.05, size=n).astype(np.float32)
    return rng.integers(-127, 128, size=shape).astype(np.int8), scales, 0, per_channel_axis


def _conv_model(rng, kind, dtype):
    n = int(rng.integers(1, 3))
    h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dh, dw = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.3 else (1, 1)
    padding = str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID":
        h, w = max(h, (kh - 1) * dh + 1), max(w, (kw - 1) * dw + 1)
    act = str(rng.choice(ACTIVATIONS))
    cin = int(rng.integers(1, 9))
    mb = ModelBuilder()
    float_model = dtype == np.float32
    in_scale, in_zp = (None, None) if float_model else (np.float32(rng.uniform(0.005, 0.1)), _zero_point(rng, dtype))
    x = mb.input("x", (n, h, w, cin), dtype, scale=in_scale, zero_point=in_zp)
    if kind == "CONV_2D":
        groups = int(rng.choice([1, 1, 1, 2])) if cin % 2 == 0 else 1
        cout = int(rng.integers(1, 6)) * groups
        wshape, axis = (cout, kh, kw, cin // groups), 0
    else:
        groups = 1
        mult = int(rng.integers(1, 4))
        cout = cin * mult
        wshape, axis = (1, kh, kw, cout), 3
    if float_model:
        wt = mb.tensor("w", wshape, np.float32, data=rng.standard_normal(wshape))
        b = mb.tensor("b", (cout,), np.float32, data=rng.standard_normal(cout))
        y = mb.tensor("y", (1,), np.float32)
    else:
        wdata, wscale, wzp, waxis = _qtensor_weights(rng, dtype, wshape, axis)
        wt = mb.tensor("w", wshape, dtype, data=wdata, scale=wscale, zero_point=wzp, axis=waxis)
        bscale = np.float32(in_scale) * np.atleast_1d(wscale).astype(np.float32)
        b = mb.tensor("b", (cout,), np.int32, data=rng.integers(-5000, 5000, size=cout),
                      scale=bscale, zero_point=0)
        y = mb.tensor("y", (1,), dtype, scale=np.float32(rng.uniform(0.01, 0.5)), zero_point=_zero_point(rng, dtype))
    mb.outputs.append(y)
    options = dict(padding=padding, stride_h=sh, stride_w=sw, dilation_hfactor=dh, dilation_wfactor=dw,
                   fused_activation_function=act)
    if kind == "DEPTHWISE_CONV_2D":
        options["depth_multiplier"] = cout // cin
    _fix_output_shape(mb, x, wshape, kind, options)
    inputs = [x, wt, b] if kind == "CONV_2D" or rng.random() < 0.85 else [x, wt]
    mb.op(kind, inputs, [y], version=2 if kind == "DEPTHWISE_CONV_2D" and not float_model else 1, **options)
    return mb


def _fix_output_shape(mb, x, wshape, kind, o):
    n, h, w, _ = mb.tensors[x].shape
    kh, kw = wshape[1], wshape[2]
    def out(size, k, s, d):
        eff = (k - 1) * d + 1
        return (size + s - 1) // s if o["padding"] == "SAME" else (size - eff + s) // s
    cout = wshape[0] if kind == "CONV_2D" else wshape[3]
    shape = (n, out(h, kh, o["stride_h"], o["dilation_hfactor"]), out(w, kw, o["stride_w"], o["dilation_wfactor"]), cout)
    mb.tensors[-1].shape = shape


@pytest.mark.litert
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8], ids=["float32", "int8", "uint8"])
@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_conv_family_matches_litert(kind, dtype):
    rng = np.random.default_rng(hash((kind, np.dtype(dtype).name)) % 2**32)
    for case in range(120):
        mb = _conv_model(rng, kind, dtype)
        x = mb.tensors[mb.inputs[0]]
        assert_bit_exact(mb.build(), [random_input(x.shape, dtype, rng)]), case


def _fc_model(rng, dtype):
    batches, depth, units = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 20))
    keep = bool(rng.random() < 0.3)
    in_shape = (batches, depth) if not keep else (1, batches, depth)
    mb = ModelBuilder()
    act = str(rng.choice(ACTIVATIONS))
    if dtype == np.float32:
        x = mb.input("x", in_shape, np.float32)
        w = mb.tensor("w", (units, depth), np.float32, data=rng.standard_normal((units, depth)))
        b = mb.tensor("b", (units,), np.float32, data=rng.standard_normal(units))
        y = mb.tensor("y", (1,), np.float32)
    else:
        in_scale, in_zp = np.float32(rng.uniform(0.005, 0.1)), _zero_point(rng, dtype)
        x = mb.input("x", in_shape, dtype, scale=in_scale, zero_point=in_zp)
        if dtype == np.uint8:
            wdata, wscale, wzp = rng.integers(0, 256, (units, depth)).astype(np.uint8), np.float32(rng.uniform(0.001, 0.05)), int(rng.integers(0, 256))
            waxis = 0
        else:
            per_channel = rng.random() < 0.5
            wdata = rng.integers(-127, 128, (units, depth)).astype(np.int8)
            wscale = rng.uniform(0.001, 0.05, size=units if per_channel else 1).astype(np.float32)
            wzp, waxis = 0, 0
        w = mb.tensor("w", (units, depth), dtype, data=wdata, scale=wscale, zero_point=wzp, axis=waxis)
        b = mb.tensor("b", (units,), np.int32, data=rng.integers(-3000, 3000, size=units),
                      scale=in_scale * np.atleast_1d(wscale).astype(np.float32))
        y = mb.tensor("y", (1,), dtype, scale=np.float32(rng.uniform(0.01, 0.5)), zero_point=_zero_point(rng, dtype))
    mb.tensors[y].shape = (1, batches, units) if keep else (batches, units)
    mb.outputs.append(y)
    mb.op("FULLY_CONNECTED", [x, w, b] if rng.random() < 0.85 else [x, w, -1], [y],
          version=1, fused_activation_function=act, keep_num_dims=keep)
    return mb


@pytest.mark.litert
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8], ids=["float32", "int8", "uint8"])
def test_fully_connected_matches_litert(dtype):
    rng = np.random.default_rng(11 + np.dtype(dtype).num)
    for case in range(120):
        mb = _fc_model(rng, dtype)
        x = mb.tensors[mb.inputs[0]]
        assert_bit_exact(mb.build(), [random_input(x.shape, dtype, rng)]), case


def test_out_of_range_multiplier_is_refused_at_allocate():
    """Scales whose ratio needs a shift beyond [-31, 31] (a fuzzing find): a typed error at
    allocate_tensors, naming the op, instead of a ValueError from the kernel at invoke."""
    import refnet

    rng = np.random.default_rng(0)
    mb = ModelBuilder()
    x = mb.input("x", (1, 4, 4, 2), np.int8, scale=1e30, zero_point=0)
    w = mb.tensor("w", (3, 1, 1, 2), np.int8, data=rng.integers(-127, 128, (3, 1, 1, 2)),
                  scale=np.full(3, 1e8, np.float32), axis=0)
    b = mb.tensor("b", (3,), np.int32, data=np.zeros(3))
    y = mb.tensor("y", (1, 4, 4, 3), np.int8, scale=1e-30, zero_point=0)
    mb.outputs.append(y)
    mb.op("CONV_2D", [x, w, b], [y], padding="SAME", stride_h=1, stride_w=1,
          dilation_hfactor=1, dilation_wfactor=1, fused_activation_function="NONE")
    it = refnet.Interpreter(model_content=mb.build())
    with pytest.raises(refnet.OpExecutionError, match=r"op 0 \(CONV_2D\).*shift"):
        it.allocate_tensors()
