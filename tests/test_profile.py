"""Profiles: refnet(profile=P) equals LiteRT's path P on every tensor.

P = "optimized" (BUILTIN_WITHOUT_DEFAULT_DELEGATES) and "xnnpack" (BUILTIN, the XNNPACK delegate),
whole model and op by op in isolation (each op fed LiteRT's own input tensors of that path), on
the three real uint8 models and the generated int8 models. The arithmetic behind each profile
entry was measured with tools/measure_profiles.py; the unit tests below pin the forms down.
"""
import numpy as np
import pytest

import refnet
from refnet import fixedpoint, requantize
from refnet.images import image_input
from refnet.litert import run_litert
from refnet.forms import Form
from refnet.profile import (EXP_SATURATING, OPTIMIZED, PROFILES, REFERENCE, SUB_ABOVE_ONE_X86, XNNPACK, Profile,
                            get_profile, installed_build, machine, resolve_id)
from refnet.verify import run_op_isolated
from support import assert_bit_exact
from refnet.bits import same_bits

REAL_MODELS = ["mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_128_quant.tflite",
               "deeplabv3_mnv2_dm05_pascal_quant.tflite"]
INT8_FAMILIES = ["v2", "v3_large", "v3_small", "edgetpu"]
IMAGES = ["cat.bmp", "grace_hopper.bmp"]
PATHS = ["optimized", "xnnpack"]


# --- the profiles as data ------------------------------------------------------------------

def test_reference_profile_is_unchanged():
    # besides FULLY_CONNECTED only what C leaves undefined: an 8-bit SUB's rescale with an output
    # multiplier above 1, the int8 EXP table's conversion of values beyond int32
    assert REFERENCE.rounding_by_op == {"FULLY_CONNECTED": Form.ROUNDING_FLOAT64, **SUB_ABOVE_ONE_X86,
                                        **EXP_SATURATING}
    assert REFERENCE.default_rounding == Form.ROUNDING_DOUBLE
    assert REFERENCE.rounding("CONV_2D", np.int8) == Form.ROUNDING_DOUBLE
    assert REFERENCE.rounding("FULLY_CONNECTED", np.uint8) == Form.ROUNDING_FLOAT64


def test_profiles_are_registered_by_id():
    for profile_id, profile in PROFILES.items():
        path, build = profile_id.split("@")
        dist_version, arch = build.split("/")
        assert path in ("reference", "optimized", "xnnpack") and arch in ("x86_64", "aarch64"), profile_id
        assert profile.name == profile_id and profile.path == path and profile.build == build
        assert profile.measured.startswith(build), (profile_id, profile.measured)
        assert get_profile(profile_id) is profile
    with pytest.raises(refnet.RefnetError, match="optimized@ai-edge-litert-2.3.0/aarch64"):
        get_profile("gpu")  # the error lists the known ids


def test_short_names_mean_the_installed_build():
    # ai-edge-litert 2.3.0 is what the test extras install beside refnet (x86-64 here)
    assert installed_build() == f"ai-edge-litert-2.3.0/{machine()}"
    assert get_profile("optimized") is PROFILES[f"optimized@ai-edge-litert-2.3.0/{machine()}"]
    assert resolve_id("xnnpack") == f"xnnpack@ai-edge-litert-2.3.0/{machine()}"
    assert resolve_id("optimized@tflite-runtime-2.14.0/aarch64") == "optimized@tflite-runtime-2.14.0/aarch64"


def test_variant_keys_win_over_dtype_keys():
    arm = get_profile("optimized@ai-edge-litert-2.3.0/aarch64")
    assert arm.rounding("CONV_2D", np.uint8) == Form.ROUNDING_SINGLE
    assert arm.rounding("CONV_2D", np.uint8, "single pixel") == Form.ROUNDING_DOUBLE_TIES_UP
    assert OPTIMIZED.rounding("CONV_2D", np.uint8, "single pixel") == Form.ROUNDING_DOUBLE_TIES_UP


def test_dtype_keys_win_over_kind_keys():
    p = Profile("t", rounding_by_op={"MEAN": 1, ("MEAN", "int8"): 2})
    assert p.rounding("MEAN", np.int8) == 2
    assert p.rounding("MEAN", "int8") == 2
    assert p.rounding("MEAN", np.uint8) == 1
    assert p.rounding("MEAN") == 1  # ops that do not say their dtype get the kind's form
    assert p.rounding("ADD", np.int8) == Form.ROUNDING_DOUBLE


def test_measured_entries():
    assert OPTIMIZED.rounding("CONV_2D", np.int8) == Form.ROUNDING_DOUBLE_TIES_UP
    assert OPTIMIZED.rounding("CONV_2D", np.uint8) == Form.ROUNDING_DOUBLE_TIES_UP
    assert OPTIMIZED.rounding("DEPTHWISE_CONV_2D", np.int8) == Form.ROUNDING_DOUBLE_TIES_UP
    assert OPTIMIZED.rounding("DEPTHWISE_CONV_2D", np.uint8) == Form.ROUNDING_DOUBLE
    assert OPTIMIZED.rounding("MEAN", np.int8) == Form.MEAN_OPTIMIZED_4D
    assert OPTIMIZED.rounding("QUANTIZE", np.float32) == Form.QUANTIZE_RECIPROCAL_RNE
    assert OPTIMIZED.rounding("ADD", np.int8) == Form.ROUNDING_DOUBLE
    for kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        for dt in (np.int8, np.uint8):
            assert XNNPACK.rounding(kind, dt) == Form.ROUNDING_FP32
    assert XNNPACK.rounding("MUL", np.int8) == Form.ROUNDING_FP32
    assert XNNPACK.rounding("MEAN", np.int8) == Form.MEAN_FP32
    assert XNNPACK.rounding("QUANTIZE", np.uint8) == Form.QUANTIZE_VCVT
    assert XNNPACK.rounding("ADD", np.uint8) == Form.ADD_XNNPACK
    assert XNNPACK.rounding("SOFTMAX", np.uint8) == Form.SOFTMAX_FLOAT_TABLE  # not delegated: optimized
    assert OPTIMIZED.rounding("SOFTMAX", np.int8) == Form.SOFTMAX_FLOAT_TABLE


def test_forms_measured_on_tflite_runtime_2_14():
    # MEAN: every channel on the scalar path (ties away), where MEAN_OPTIMIZED_4D rounds the
    # 16-channel blocks' ties up
    x = np.full((1, 1, 2, 17), -3, np.int8)  # sum -6 of 2 values, scale 1 -> 2: -6 / 4 = -1.5
    scalar = requantize.mean_optimized_4d(x, np.float32(1.0), 0, np.float32(2.0), 0, vector_blocks=False)
    blocks = requantize.mean_optimized_4d(x, np.float32(1.0), 0, np.float32(2.0), 0)
    assert scalar.ravel().tolist() == [-2] * 17
    assert blocks.ravel().tolist() == [-1] * 16 + [-2]


# --- the forms ------------------------------------------------------------------------------

def test_fp32_scale_is_float32_product_then_quotient():
    xs, ws, ys = np.float32(0.0235294), np.float32([0.0031, 0.57]), np.float32(0.1234567)
    s = requantize.fp32_scale(xs, ws, ys)
    assert s.dtype == np.float32
    assert same_bits(s, np.float32(np.float32(xs * ws) / ys))


def test_requantize_fp32_rounds_half_to_even_then_adds_the_zero_point():
    acc = np.array([[5, 7, -5, -7, 3, 1000]], np.int32)
    out = requantize.requantize_fp32(acc, np.float32(0.5), 10, 0, 255, np.uint8)
    # 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4, 1.5 -> 2, 500 -> clamp
    assert out.tolist() == [[12, 14, 8, 6, 12, 255]]
    out = requantize.requantize_fp32(acc, np.float32(0.5), -128, -128, 127, np.int8)
    assert out.tolist() == [[-126, -124, -128, -128, -126, 127]]


def test_requantize_fp32_converts_the_accumulator_to_float32_first():
    acc = np.array([[2**24 + 1]], np.int32)  # not a float32: becomes 2**24
    out = requantize.requantize_fp32(acc, np.float32(2.0**-24), 0, -128, 127, np.int8)
    assert out.tolist() == [[1]]


def test_mean_optimized_4d_splits_16_channel_blocks_ties_up_and_tail_ties_away():
    # 17 channels; scale 1/(2*2) with n = 2: every output is sum/4, a tie for sums = 4k + 2.
    x = np.full((1, 1, 2, 17), -1, np.int8)  # sum -2 -> -0.5: ties up -> 0, ties away -> -1
    out = requantize.mean_optimized_4d(x, np.float32(0.5), 0, np.float32(1.0), 0)
    assert out.shape == (1, 1, 1, 17)
    assert out[0, 0, 0, :16].tolist() == [0] * 16
    assert out[0, 0, 0, 16] == -1


def test_mean_fp32_matches_a_float32_oracle():
    total = np.array([-300, 0, 17, 1000])
    out = requantize.mean_fp32(total, 49, np.float32(0.02), 3, np.float32(0.01), -5, np.int8)
    f = np.float32
    s = f(f(f(0.02) / f(0.01)) * f(f(1) / f(49)))
    zp = f(f(-5) - f(f(49 * 3) * s))
    want = np.clip(np.rint(f(total.astype(f) * s) + zp), -128, 127)
    assert out.tolist() == want.astype(int).tolist()


def test_quantize_reciprocal_rne_and_vcvt():
    x = np.array([0.25, 0.75, -0.25, 1.0], np.float32)
    # 1/0.5 = 2: 0.5 -> 0, 1.5 -> 2, -0.5 -> -0 (half to even), 2
    assert requantize.quantize_reciprocal_rne(x, np.float32(0.5), 1, np.int8).tolist() == [1, 3, 1, 3]
    q = np.array([0, 1, 2, 3, 255], np.uint8)
    # m = 128 (scale ratio 0.5): (x - 0) / 2 ties up
    assert requantize.quantize_vcvt(q, np.float32(0.5), 0, np.float32(1.0), 0, np.uint8).tolist() == \
        [0, 1, 1, 2, 128]


def test_add_xnnpack_multipliers_and_ties_up():
    # ratios 0.5 and 0.25: exponent -1, shift 21, multipliers 2**20 and 2**19
    ma, mb, shift = requantize.add_xnnpack_params(np.float32(0.5), np.float32(0.25), np.float32(1.0))
    assert (ma, mb, shift) == (1 << 20, 1 << 19, 21)
    a = np.array([1, -1, 3], np.int64)
    b = np.array([0, 0, 2], np.int64)
    # 0.5, -0.5, 2.0 -> ties toward +inf: 1, 0, 2 (then + zero point 5)
    assert requantize.add_xnnpack(a, 0, b, 0, (ma, mb, shift), 5).tolist() == [6, 5, 7]


def test_fixed_point_forms_remain_with_the_kernel():
    acc = np.array([[-3, 5]], np.int32)
    q_mult, q_shift = fixedpoint.quantize_multiplier(0.5)
    from refnet.requantize import QuantizedOutput, requantize_to

    q = QuantizedOutput(np.array([q_mult, q_mult], np.int32), np.array([q_shift, q_shift], np.int32),
                        0, -128, 127, Form.ROUNDING_DOUBLE_TIES_UP)
    assert requantize_to(acc, q, np.int8).tolist() == [[-1, 3]]
    q.rounding = Form.ROUNDING_FP32
    with pytest.raises(ValueError, match="scales"):
        requantize_to(acc, q, np.int8)
    q.scales = (np.float32(1.0), np.float32([0.5, 0.5]), np.float32(1.0))
    assert requantize_to(acc, q, np.int8).tolist() == [[-2, 2]]


# --- against LiteRT -------------------------------------------------------------------------

def _inputs(content, shared_dir):
    detail = refnet.Interpreter(model_content=content).get_input_details()[0]
    return [image_input(shared_dir / "images" / name, detail) for name in IMAGES]


def _isolated_equal(content, x, path) -> tuple[int, int]:
    """Every op of the model run alone on LiteRT's own inputs (path `path`) equals LiteRT's
    output. Returns (ops equal, ops compared); the assertion names the first op that differs."""
    it = refnet.Interpreter(model_content=content, experimental_preserve_all_tensors=True, profile=path)
    it.allocate_tensors()
    theirs = run_litert(content, [x], path=path)
    equal = compared = 0
    bad = []
    for op in it.graph.ops:
        outs = run_op_isolated(it, op.index, theirs)
        for t, o in zip(op.outputs, outs):
            compared += 1
            if same_bits(o, theirs[t]):
                equal += 1
            else:
                bad.append(f"op {op.index} {op.kind}: {int(np.count_nonzero(o != theirs[t]))}/{o.size} differ")
    assert not bad, f"{path}: {len(bad)} ops differ in isolation: " + "; ".join(bad[:5])
    return equal, compared


def _int8_model(family):
    model_factory = pytest.importorskip("tools.model_factory")
    return model_factory.get_model(family, "int8", resolution=96).read_bytes()


@pytest.mark.shared
@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", REAL_MODELS)
def test_real_uint8_model_every_tensor(shared_dir, model, path):
    content = (shared_dir / "models" / model).read_bytes()
    for x in _inputs(content, shared_dir):
        assert assert_bit_exact(content, [x], path=path) > 25


@pytest.mark.shared
@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", REAL_MODELS)
def test_real_uint8_model_every_op_isolated(shared_dir, model, path):
    content = (shared_dir / "models" / model).read_bytes()
    for x in _inputs(content, shared_dir):
        equal, compared = _isolated_equal(content, x, path)
        assert equal == compared > 25


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("family", INT8_FAMILIES)
def test_generated_int8_model_every_tensor(shared_dir, family, path):
    content = _int8_model(family)
    for x in _inputs(content, shared_dir):
        assert assert_bit_exact(content, [x], path=path) > 25


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("family", INT8_FAMILIES)
def test_generated_int8_model_every_op_isolated(shared_dir, family, path):
    content = _int8_model(family)
    for x in _inputs(content, shared_dir):
        equal, compared = _isolated_equal(content, x, path)
        assert equal == compared > 25


@pytest.mark.shared
@pytest.mark.litert
def test_profiles_differ_from_the_reference_where_litert_does(shared_dir):
    """The paths really differ on these models, so the equality above is not vacuous."""
    content = (shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    x = _inputs(content, shared_dir)[0]
    ref = run_litert(content, [x], path="reference")
    for path in PATHS:
        other = run_litert(content, [x], path=path)
        assert any(not same_bits(ref[t], other[t]) for t in ref if t in other), path


def test_rndnu_is_the_exact_product_rounded_half_up():
    """Form.ROUNDING_RNDNU against exact rational arithmetic (Python ints), normal and subnormal
    float32 scales, ties of both signs, shifts beyond 56."""
    from fractions import Fraction
    import math

    rng = np.random.default_rng(5)
    scales = np.concatenate([rng.uniform(1e-6, 0.9, 20), [0.5, 2.0**-40, 2.0**-70, 1e-40, 3.0]]).astype(np.float32)
    acc = np.concatenate([rng.integers(-(2**31), 2**31, (50,)), [-3, -1, 1, 3, 0, 2**31 - 1, -(2**31)]])
    acc = np.broadcast_to(acc[:, None], (acc.size, scales.size))
    got = requantize.requantize_rndnu(acc, scales, 0, -(2**40), 2**40, np.int64)
    for (i, j), value in np.ndenumerate(got):
        exact = Fraction(int(acc[i, j])) * Fraction(float(scales[j]))
        assert value == math.floor(exact + Fraction(1, 2)), (int(acc[i, j]), float(scales[j]))


def test_aarch64_builds_record_their_float_arithmetic():
    """What the aarch64 measurements found, as data (tests/test_runtime_matrix.py checks the bits)."""
    from refnet.forms import ORDERED, FloatSum

    arm23, arm214 = get_profile("reference@ai-edge-litert-2.3.0/aarch64"), get_profile("reference@tflite-runtime-2.14.0/aarch64")
    assert REFERENCE.float_sum("CONV_2D") == ORDERED and not REFERENCE.saturating_conversion
    assert arm23.float_sum("CONV_2D") == FloatSum(fused=True, unfused_block=8)
    assert arm214.float_sum("FULLY_CONNECTED") == FloatSum(fused=True, lanes=4)
    assert arm23.float_sum("DEPTHWISE_CONV_2D").fused and arm214.float_sum("DEPTHWISE_CONV_2D").fused
    assert arm23.saturating_conversion and arm214.saturating_conversion
    assert arm214.flush_denormals and not arm23.flush_denormals
    assert arm214.float_reciprocal == {"MEAN", "SOFTMAX", "HARD_SWISH", "QUANTIZE"} and not arm23.float_reciprocal
    assert arm23.float_contracted == {"CONCATENATION"} and not arm214.float_contracted


def _fc_keep_num_dims(per_channel: bool) -> bytes:
    from refnet.tflite_writer import ModelBuilder

    mb = ModelBuilder()
    x = mb.input("x", (1, 2, 4), np.int8, scale=0.05, zero_point=3)
    scale = np.float32([0.01, 0.02, 0.03]) if per_channel else np.float32(0.02)
    w = mb.tensor("w", (3, 4), np.int8, data=np.arange(12).reshape(3, 4) - 6, scale=scale, zero_point=0)
    y = mb.tensor("y", (1, 2, 3), np.int8, scale=0.1, zero_point=-2)
    mb.outputs.append(y)
    mb.op("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="NONE", keep_num_dims=True)
    return mb.build()


@pytest.mark.parametrize("build", ["tflite-runtime-2.14.0/x86_64", "tflite-runtime-2.14.0/aarch64"])
def test_undefined_behaviour_of_a_build_is_refused_not_invented(build):
    from refnet.errors import UnsupportedOpError

    for path in ("reference", "optimized", "xnnpack"):
        it = refnet.Interpreter(model_content=_fc_keep_num_dims(True), profile=f"{path}@{build}")
        with pytest.raises(UnsupportedOpError, match="uninitialized memory"):
            it.allocate_tensors()
        refnet.Interpreter(model_content=_fc_keep_num_dims(False), profile=f"{path}@{build}").allocate_tensors()
    refnet.Interpreter(model_content=_fc_keep_num_dims(True), profile="reference").allocate_tensors()
