"""conv / depthwise / pointwise kernels (+ requantize) vs LiteRT 2.3.0 on single-op models.

Float kernels must equal LiteRT's reference kernels (BUILTIN_REF) bit for bit.  For the
integer kernels the accumulators are requantized with each rounding form, and the test pins
which form LiteRT uses on which path: a form "matches" with 0 differing elements, and the
other forms differ somewhere on the same data (so the test can tell them apart).

Geometry here is computed the way TFLite does for SAME/VALID padding (output size, then
pad = total padding // 2 on the top/left).
"""
import numpy as np

from refnet.forms import Form
import pytest

pytest.importorskip("ai_edge_litert")
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from refnet import _kernels_conv as kc  # noqa: E402
from refnet import _kernels_depthwise as kd  # noqa: E402
from refnet import _kernels_pointwise as kp  # noqa: E402
from refnet import _kernels_requantize as krq  # noqa: E402
from refnet import fixedpoint as fx  # noqa: E402
from refnet.tflite_writer import ModelBuilder  # noqa: E402
from refnet.bits import same_bits

pytestmark = pytest.mark.litert

FLT_MAX = float(np.finfo(np.float32).max)
ACTIVATIONS = {"NONE": (-FLT_MAX, FLT_MAX), "RELU6": (0.0, 6.0), "RELU": (0.0, FLT_MAX)}
ROUNDINGS = (Form.ROUNDING_DOUBLE, Form.ROUNDING_SINGLE, Form.ROUNDING_DOUBLE_TIES_UP)


def run_litert(model, x, resolver=OpResolverType.BUILTIN_REF):
    interpreter = Interpreter(model_content=model, num_threads=1,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def out_size_and_pad(in_size, k, stride, dilation, padding):
    effective = (k - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - effective + stride) // stride
    return out, max((out - 1) * stride + effective - in_size, 0) // 2


def single_op_model(kind, x_spec, weights, bias, out_spec, **options):
    """x_spec/out_spec: (shape, dtype, scale, zp); weights/bias: (array, scale, zp, axis)."""
    mb = ModelBuilder()
    shape, dtype, scale, zp = x_spec
    xi = mb.input("x", shape, dtype, scale=scale, zero_point=zp)
    w, w_scale, w_zp, axis = weights
    wi = mb.tensor("w", w.shape, w.dtype, data=w, scale=w_scale, zero_point=w_zp, axis=axis)
    b, b_scale = bias
    bi = mb.tensor("b", b.shape, b.dtype, data=b, scale=b_scale,
                   zero_point=None if b_scale is None else 0)
    shape, dtype, scale, zp = out_spec
    yi = mb.tensor("y", shape, dtype, scale=scale, zero_point=zp)
    mb.outputs.append(yi)
    mb.op(kind, [xi, wi, bi], [yi], **options)
    return mb.build()


def assert_bits_equal(got, expected):
    assert got.shape == expected.shape
    assert same_bits(got.view(np.uint32), expected.view(np.uint32)), \
        f"{int((got != expected).sum())} of {got.size} differ"


def random_geometry(rng, trial):
    return dict(h=int(rng.integers(3, 12)), w=int(rng.integers(3, 12)),
                cin=int(rng.integers(1, 8)), cout=int(rng.integers(1, 8)),
                kh=int(rng.integers(1, 4)), kw=int(rng.integers(1, 4)),
                sh=int(rng.integers(1, 3)), sw=int(rng.integers(1, 3)),
                dh=int(rng.integers(1, 3)), dw=int(rng.integers(1, 3)),
                padding=("SAME", "VALID")[trial % 2], act=("NONE", "RELU6", "RELU")[trial % 3])


# ------------------------------------------------------------------------------------------
# Float: bit for bit against the reference kernels
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trial", range(12))
def test_float_conv_and_depthwise_match_litert(trial):
    rng = np.random.default_rng(trial)
    g = random_geometry(rng, trial)
    oh, pt = out_size_and_pad(g["h"], g["kh"], g["sh"], g["dh"], g["padding"])
    ow, pl = out_size_and_pad(g["w"], g["kw"], g["sw"], g["dw"], g["padding"])
    if oh <= 0 or ow <= 0:  # VALID window larger than the image: use SAME instead
        g["padding"] = "SAME"
        oh, pt = out_size_and_pad(g["h"], g["kh"], g["sh"], g["dh"], "SAME")
        ow, pl = out_size_and_pad(g["w"], g["kw"], g["sw"], g["dw"], "SAME")
    act_min, act_max = ACTIVATIONS[g["act"]]
    x = rng.standard_normal((1, g["h"], g["w"], g["cin"])).astype(np.float32)
    common = dict(padding=g["padding"], stride_h=g["sh"], stride_w=g["sw"],
                  dilation_hfactor=g["dh"], dilation_wfactor=g["dw"],
                  fused_activation_function=g["act"])

    f = rng.standard_normal((g["cout"], g["kh"], g["kw"], g["cin"])).astype(np.float32)
    b = rng.standard_normal(g["cout"]).astype(np.float32)
    model = single_op_model("CONV_2D", (x.shape, np.float32, None, None), (f, None, None, 0),
                            (b, None), ((1, oh, ow, g["cout"]), np.float32, None, None), **common)
    out = np.empty((1, oh, ow, g["cout"]), np.float32)
    kc.conv2d_float(x, f, b, g["sh"], g["sw"], g["dh"], g["dw"], pt, pl, act_min, act_max, out)
    assert_bits_equal(out, run_litert(model, x))

    mult = int(rng.integers(1, 3))
    c = g["cin"] * mult
    f = rng.standard_normal((1, g["kh"], g["kw"], c)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    model = single_op_model("DEPTHWISE_CONV_2D", (x.shape, np.float32, None, None),
                            (f, None, None, 0), (b, None), ((1, oh, ow, c), np.float32, None, None),
                            depth_multiplier=mult, **common)
    out = np.empty((1, oh, ow, c), np.float32)
    kd.depthwise_float(x, f, b, mult, g["sh"], g["sw"], g["dh"], g["dw"], pt, pl, act_min,
                       act_max, out)
    assert_bits_equal(out, run_litert(model, x))


@pytest.mark.parametrize("trial", range(6))
def test_float_fully_connected_matches_litert(trial):
    rng = np.random.default_rng(100 + trial)
    act = ("NONE", "RELU6", "RELU")[trial % 3]
    a = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 1300)))).astype(np.float32)
    w = rng.standard_normal((int(rng.integers(1, 40)), a.shape[1])).astype(np.float32)
    b = rng.standard_normal(w.shape[0]).astype(np.float32)
    model = single_op_model("FULLY_CONNECTED", (a.shape, np.float32, None, None),
                            (w, None, None, 0), (b, None),
                            ((a.shape[0], w.shape[0]), np.float32, None, None),
                            fused_activation_function=act)
    out = np.empty((a.shape[0], w.shape[0]), np.float32)
    kp.matmul_float(a, w, b, *ACTIVATIONS[act], out)
    assert_bits_equal(out, run_litert(model, a))


# ------------------------------------------------------------------------------------------
# Integer: which requantization each LiteRT path uses
# ------------------------------------------------------------------------------------------


def mismatches_by_rounding(acc, multiplier, shift, out_zp, dtype, expected):
    info = np.iinfo(dtype)
    counts = {}
    for rounding in ROUNDINGS:
        out = np.empty(acc.shape, dtype)
        krq.requantize(acc, multiplier, shift, out_zp, int(info.min), int(info.max), rounding, out)
        counts[rounding] = int((out.reshape(expected.shape) != expected).sum())
    return counts


def conv_multipliers(in_scale, filter_scales, out_scale):
    """double(input_scale) * double(filter_scale) / double(output_scale), quantized."""
    return fx.quantize_multipliers([float(np.float32(in_scale)) * float(s) / float(np.float32(out_scale))
                                    for s in np.atleast_1d(np.float32(filter_scales))])


@pytest.mark.parametrize("dtype,kind", [(np.int8, "CONV_2D"), (np.int8, "DEPTHWISE_CONV_2D"),
                                        (np.uint8, "CONV_2D"), (np.uint8, "DEPTHWISE_CONV_2D")])
def test_reference_conv_and_depthwise_use_double_rounding(dtype, kind):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    h = w = 16
    cin = 8
    cout = 8 if kind == "DEPTHWISE_CONV_2D" else 16
    per_channel = dtype == np.int8  # int8: per-channel symmetric weights; uint8: per-tensor
    totals = dict.fromkeys(ROUNDINGS, 0)
    for _ in range(6):
        in_scale, in_zp = float(rng.uniform(0.01, 0.1)), int(rng.integers(info.min, int(info.max) + 1))
        out_scale, out_zp = float(rng.uniform(0.05, 0.5)), int(rng.integers(info.min, int(info.max) + 1))
        w_scales = (rng.uniform(0.001, 0.01, cout).astype(np.float32) if per_channel
                    else np.float32(rng.uniform(0.001, 0.01)))
        w_zp = 0 if dtype == np.int8 else int(rng.integers(0, 256))
        x = rng.integers(info.min, int(info.max) + 1, (1, h, w, cin)).astype(dtype)
        fshape = (cout, 3, 3, cin) if kind == "CONV_2D" else (1, 3, 3, cout)
        f = rng.integers(max(int(info.min), -127), int(info.max) + 1, fshape).astype(dtype)
        bias = rng.integers(-3000, 3000, cout).astype(np.int32)
        options = dict(padding="SAME", stride_h=1, stride_w=1, fused_activation_function="NONE")
        if kind == "DEPTHWISE_CONV_2D":
            options["depth_multiplier"] = 1
        model = single_op_model(
            kind, (x.shape, dtype, in_scale, in_zp),
            (f, w_scales, w_zp, 0 if kind == "CONV_2D" else 3),
            (bias, (np.float32(in_scale) * np.atleast_1d(w_scales)).astype(np.float32)),
            ((1, h, w, cout), dtype, out_scale, out_zp), **options)
        expected = run_litert(model, x)
        acc = np.empty((1, h, w, cout), np.int32)
        if kind == "CONV_2D":
            kc.conv2d_int(x, f, bias, -in_zp, -w_zp, 1, 1, 1, 1, 1, 1, acc)
        else:
            kd.depthwise_int(x, f, bias, 1, -in_zp, -w_zp, 1, 1, 1, 1, 1, 1, acc)
        multiplier, shift = conv_multipliers(in_scale, w_scales, out_scale)
        counts = mismatches_by_rounding(acc.reshape(-1, cout), multiplier, shift, out_zp, dtype,
                                        expected)
        for rounding, count in counts.items():
            totals[rounding] += count
    assert totals[Form.ROUNDING_DOUBLE] == 0, totals
    assert totals[Form.ROUNDING_SINGLE] > 0 and totals[Form.ROUNDING_DOUBLE_TIES_UP] > 0, totals


def test_optimized_1x1_conv_uses_double_rounding_with_ties_up():
    rng = np.random.default_rng(11)
    totals = {"reference": dict.fromkeys(ROUNDINGS, 0), "optimized": dict.fromkeys(ROUNDINGS, 0)}
    for _ in range(8):
        h, w, cin, cout = 12, 12, int(rng.integers(4, 16)), int(rng.integers(4, 16))
        in_scale, in_zp = float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))
        out_scale, out_zp = float(rng.uniform(0.01, 0.2)), int(rng.integers(-128, 128))
        w_scales = rng.uniform(0.0005, 0.01, cout).astype(np.float32)
        x = rng.integers(-128, 128, (1, h, w, cin)).astype(np.int8)
        f = rng.integers(-127, 128, (cout, 1, 1, cin)).astype(np.int8)
        bias = rng.integers(-3000, 3000, cout).astype(np.int32)
        model = single_op_model("CONV_2D", (x.shape, np.int8, in_scale, in_zp), (f, w_scales, 0, 0),
                                (bias, (np.float32(in_scale) * w_scales).astype(np.float32)),
                                ((1, h, w, cout), np.int8, out_scale, out_zp),
                                padding="SAME", stride_h=1, stride_w=1,
                                fused_activation_function="NONE")
        acc = np.empty((h * w, cout), np.int32)
        kp.matmul_int(x.reshape(-1, cin), f.reshape(cout, cin), bias, -in_zp, 0, acc)
        multiplier, shift = conv_multipliers(in_scale, w_scales, out_scale)
        for path, resolver in (("reference", OpResolverType.BUILTIN_REF),
                               ("optimized", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)):
            counts = mismatches_by_rounding(acc, multiplier, shift, out_zp, np.int8,
                                            run_litert(model, x, resolver))
            for rounding, count in counts.items():
                totals[path][rounding] += count
    assert totals["reference"][Form.ROUNDING_DOUBLE] == 0, totals
    assert totals["optimized"][Form.ROUNDING_DOUBLE_TIES_UP] == 0, totals
    assert totals["optimized"][Form.ROUNDING_DOUBLE] > 0, totals


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_reference_fully_connected_uses_single_rounding(dtype):
    # Measured on LiteRT 2.3.0: the reference FULLY_CONNECTED kernel requantizes with the
    # single-rounding form (unlike reference CONV_2D / DEPTHWISE_CONV_2D), multiplier
    # double(input_scale) * double(filter_scale) / double(output_scale).
    rng = np.random.default_rng(5 if dtype == np.int8 else 6)
    info = np.iinfo(dtype)
    totals = dict.fromkeys(ROUNDINGS, 0)
    for _ in range(60):
        rows, depth, cout = 8, int(rng.integers(16, 300)), int(rng.integers(8, 64))
        in_scale, in_zp = float(rng.uniform(0.01, 0.1)), int(rng.integers(info.min, int(info.max) + 1))
        out_scale, out_zp = float(rng.uniform(0.05, 0.5)), int(rng.integers(info.min, int(info.max) + 1))
        w_scale = float(rng.uniform(0.001, 0.01))
        w_zp = 0 if dtype == np.int8 else int(rng.integers(0, 256))
        a = rng.integers(info.min, int(info.max) + 1, (rows, depth)).astype(dtype)
        w = rng.integers(max(int(info.min), -127), int(info.max) + 1, (cout, depth)).astype(dtype)
        bias = rng.integers(-3000, 3000, cout).astype(np.int32)
        model = single_op_model("FULLY_CONNECTED", (a.shape, dtype, in_scale, in_zp),
                                (w, w_scale, w_zp, 0),
                                (bias, np.float32(in_scale) * np.float32(w_scale)),
                                ((rows, cout), dtype, out_scale, out_zp),
                                fused_activation_function="NONE")
        acc = np.empty((rows, cout), np.int32)
        kp.matmul_int(a, w, bias, -in_zp, -w_zp, acc)
        multiplier, shift = conv_multipliers(in_scale, w_scale, out_scale)
        counts = mismatches_by_rounding(acc, multiplier, shift, out_zp, dtype,
                                        run_litert(model, a))
        for rounding, count in counts.items():
            totals[rounding] += count
    assert totals[Form.ROUNDING_SINGLE] == 0, totals
    assert totals[Form.ROUNDING_DOUBLE] > 0, totals
