"""SUB, DIV, FLOOR_DIV, MAXIMUM, MINIMUM, SQRT, RSQRT: refnet vs LiteRT on single-op models, with
broadcasting, fused activations, +-0, ties and overflow, on each CPU path."""
from __future__ import annotations

import numpy as np
import pytest

from refnet.errors import OpExecutionError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from refnet.litert import run_litert
from support import assert_bit_exact, run_refnet

PATHS = ["reference", "optimized", "xnnpack"]
# LiteRT's XNNPACK runs float32 with subnormals flushed, no clamp to +-FLT_MAX and an approximate
# RSQRT: refnet does not model its float32 path (README), so float32 cases check the other two.
FLOAT_PATHS = ["reference", "optimized"]
CASES = [("SUB", np.float32), ("SUB", np.int32), ("DIV", np.float32), ("FLOOR_DIV", np.float32),
         ("FLOOR_DIV", np.int32), ("MAXIMUM", np.float32), ("MAXIMUM", np.int32), ("MAXIMUM", np.int8),
         ("MAXIMUM", np.uint8), ("MINIMUM", np.float32), ("MINIMUM", np.int32), ("MINIMUM", np.uint8)]
ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _q(dtype):
    return {"scale": 0.05, "zero_point": 3} if dtype in (np.int8, np.uint8) else {}


def _shapes(rng):
    rank = int(rng.integers(1, 5))
    a = [int(d) for d in rng.integers(1, 5, size=rank)]
    b = [d if rng.random() < 0.6 else 1 for d in a]
    if rng.random() < 0.3:
        b = b[int(rng.integers(0, rank)):]
    return tuple(a), tuple(b)


def _values(shape, dtype, rng, kind):
    if dtype == np.float32:
        v = rng.choice(np.array([0.0, -0.0, 1.0, -1.0, 2.5, 3e38, -3e38, 1e-39], np.float32), size=shape)
        v = np.where(rng.random(shape) < 0.5, rng.normal(0, 4, shape), v).astype(np.float32)
        return v
    info = np.iinfo(dtype)
    lo, hi = (max(info.min, -50), min(info.max, 50)) if kind == "FLOOR_DIV" else (info.min, info.max)
    return rng.integers(lo, int(hi) + 1, size=shape).astype(dtype)


BINARY = [(k, d, p) for k, d in CASES for p in (FLOAT_PATHS if d == np.float32 else PATHS)]


@pytest.mark.parametrize("kind, dtype, path", BINARY, ids=[f"{k}-{np.dtype(d).name}-{p}" for k, d, p in BINARY])
def test_binary(kind, dtype, path):
    rng = np.random.default_rng(BINARY.index((kind, dtype, path)))
    for case in range(25):
        sa, sb = _shapes(rng)
        if case % 2:
            sa, sb = sb, sa
        out = np.broadcast_shapes(sa, sb)
        mb = ModelBuilder()
        a = mb.input("a", sa, dtype, **_q(dtype))
        b = mb.input("b", sb, dtype, **_q(dtype))
        y = mb.tensor("y", out, dtype, **_q(dtype))
        options = {"fused_activation_function": ACTS[case % 4]} if kind in ("SUB", "DIV") else {}
        mb.op(kind, [a, b], [y], **options)
        mb.outputs.append(y)
        va, vb = _values(sa, dtype, rng, kind), _values(sb, dtype, rng, kind)
        if kind == "FLOOR_DIV":  # a zero divisor fails (tested below)
            vb = np.where(vb == 0, 7, vb).astype(dtype)
        assert_bit_exact(mb.build(), [va, vb], path=path)


@pytest.mark.parametrize("path", FLOAT_PATHS)
@pytest.mark.parametrize("kind", ["SQRT", "RSQRT"])
def test_sqrt_rsqrt(kind, path):
    rng = np.random.default_rng(7 + PATHS.index(path))
    for case in range(10):
        shape = tuple(int(d) for d in rng.integers(1, 9, size=int(rng.integers(1, 5))))
        x = np.abs(rng.normal(0, 10, shape)).astype(np.float32)
        x.flat[0] = 0.0
        if x.size > 2:
            x.flat[1], x.flat[2] = 1e-40, 3e38
        mb = ModelBuilder()
        xi = mb.input("x", shape, np.float32)
        y = mb.tensor("y", shape, np.float32)
        mb.op(kind, [xi], [y])
        mb.outputs.append(y)
        assert_bit_exact(mb.build(), [x], path=path)


def test_typed_errors():
    mb = ModelBuilder()
    a, b = mb.input("a", (3,), np.int32), mb.input("b", (3,), np.int32)
    y = mb.tensor("y", (3,), np.int32)
    mb.op("FLOOR_DIV", [a, b], [y])
    mb.outputs.append(y)
    with pytest.raises(OpExecutionError, match="division by zero"):
        run_refnet(mb.build(), [np.array([1, 2, 3], np.int32), np.array([1, 0, 2], np.int32)])
    mb = ModelBuilder()
    a, b = mb.input("a", (2,), np.float32), mb.input("b", (2,), np.float32)
    y = mb.tensor("y", (2,), np.float32)
    mb.op("FLOOR_DIV", [a, b], [y])
    mb.outputs.append(y)
    with pytest.raises(OpExecutionError, match="division by zero"):  # float32 too, as LiteRT
        run_refnet(mb.build(), [np.array([1, 2], np.float32), np.array([-0.0, 2], np.float32)])
    mb = ModelBuilder()
    a = mb.input("a", (3,), np.int8, scale=0.1, zero_point=0)
    b = mb.input("b", (3,), np.int8, scale=0.2, zero_point=0)
    y = mb.tensor("y", (3,), np.int8, scale=0.1, zero_point=0)
    mb.op("MAXIMUM", [a, b], [y])
    mb.outputs.append(y)
    with pytest.raises(UnsupportedOpError, match="not quantized alike"):
        run_refnet(mb.build(), [np.zeros(3, np.int8)] * 2)


# --- quantized SUB ---------------------------------------------------------------------------------

def _random_sub_quantization(rng, dtype, case):
    info = np.iinfo(dtype)

    def one():
        scale = float(rng.choice([0.003, 0.02, 0.05, 0.1, 0.37, 1.0, 4.0]))
        zp = int(rng.choice([info.min, info.max, 0, int(rng.integers(info.min, int(info.max) + 1))]))
        return scale, zp

    q1, q2, qo = one(), one(), one()
    if case % 5 == 0:  # equal input scales: every rescale is a tie candidate
        q2 = (q1[0], q2[1])
    if case % 7 == 3:  # an output scale ~2**-19 of the inputs': the output multiplier exceeds 1
        qo = (max(q1[0], q2[0]) * 2.0 ** -21 * float(rng.choice([1.0, 3.0, 7.5])), qo[1])
    return q1, q2, qo


SUB_Q = [(d, p) for d in (np.int8, np.uint8) for p in PATHS]


@pytest.mark.parametrize("dtype, path", SUB_Q, ids=[f"{np.dtype(d).name}-{p}" for d, p in SUB_Q])
def test_quantized_sub(dtype, path):
    rng = np.random.default_rng(100 + SUB_Q.index((dtype, path)))
    for case in range(40):
        sa, sb = _shapes(rng)
        if case % 2:
            sa, sb = sb, sa
        if case % 9 == 0:  # long same-shape rows: the vector blocks of an optimized kernel
            sa = sb = (int(rng.integers(1, 4)), int(rng.integers(1, 40)))
        out = np.broadcast_shapes(sa, sb)
        q1, q2, qo = _random_sub_quantization(rng, dtype, case)
        mb = ModelBuilder()
        a = mb.input("a", sa, dtype, scale=q1[0], zero_point=q1[1])
        b = mb.input("b", sb, dtype, scale=q2[0], zero_point=q2[1])
        y = mb.tensor("y", out, dtype, scale=qo[0], zero_point=qo[1])
        mb.op("SUB", [a, b], [y], fused_activation_function=ACTS[case % 4])
        mb.outputs.append(y)
        info = np.iinfo(dtype)
        va = rng.integers(info.min, int(info.max) + 1, size=sa).astype(dtype)
        vb = rng.integers(info.min, int(info.max) + 1, size=sb).astype(dtype)
        assert_bit_exact(mb.build(), [va, vb], path=path)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantized_sub_every_pair(dtype):
    """Every input pair of quantizations where the reference's double rounding and XNNPACK's one
    shift (ties up) differ (found by comparing the two over random quantizations); on the
    optimized path LiteRT runs the reference code."""
    values = np.arange(256, dtype=np.uint8).view(dtype)
    a_values, b_values = np.repeat(values, 256), np.tile(values, 256)
    differ = 0
    quantizations = {np.int8: [((0.05, -4), (0.05, 61), (0.1, -54)), ((0.1, -61), (0.25, -88), (0.3, 49))],
                     np.uint8: [((0.02, 72), (0.02, 132), (1.0, 140)), ((0.05, 2), (0.1, 60), (0.1, 16))]}
    for q1, q2, qo in quantizations[dtype]:
        mb = ModelBuilder()
        a = mb.input("a", (65536,), dtype, scale=q1[0], zero_point=q1[1])
        b = mb.input("b", (65536,), dtype, scale=q2[0], zero_point=q2[1])
        y = mb.tensor("y", (65536,), dtype, scale=qo[0], zero_point=qo[1])
        mb.op("SUB", [a, b], [y])
        mb.outputs.append(y)
        for path in PATHS:
            assert_bit_exact(mb.build(), [a_values, b_values], path=path)
        reference = run_refnet(mb.build(), [a_values, b_values])[y]
        xnnpack = run_refnet(mb.build(), [a_values, b_values], profile="xnnpack")[y]
        differ += int((reference != xnnpack).sum())
    assert differ > 0  # the pairs tell the two arithmetics apart


def test_quantized_sub_output_multiplier_above_one():
    """An output scale below 2**-20 of the inputs' makes the output multiplier exceed 1: LiteRT's
    rescale (undefined in C) then returns the sign of the high multiply (zp +- 1) on x86-64;
    XNNPACK leaves the node to LiteRT's kernel."""
    rng = np.random.default_rng(5)
    for dtype in (np.int8, np.uint8):
        for ratio in (1.33, 3.0, 100.0, 2.0 ** 20):
            out_scale = 8.0 / (2 ** 20 * ratio)
            mb = ModelBuilder()
            a = mb.input("a", (64,), dtype, scale=0.02, zero_point=1)
            b = mb.input("b", (64,), dtype, scale=4.0, zero_point=2)
            y = mb.tensor("y", (64,), dtype, scale=out_scale, zero_point=5)
            mb.op("SUB", [a, b], [y])
            mb.outputs.append(y)
            info = np.iinfo(dtype)
            va = rng.integers(info.min, int(info.max) + 1, 64).astype(dtype)
            vb = rng.integers(info.min, int(info.max) + 1, 64).astype(dtype)
            for path in PATHS:
                assert_bit_exact(mb.build(), [va, vb], path=path)
            # aarch64 builds compute this undefined shift differently by loop and path: refused there
            with pytest.raises(UnsupportedOpError, match="not measured"):
                run_refnet(mb.build(), [va, vb], profile="optimized@ai-edge-litert-2.3.0/aarch64")


# --- EXP -------------------------------------------------------------------------------------------

def _exp_model(shape, dtype, in_q=(None, None), out_q=(None, None)):
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, scale=in_q[0], zero_point=in_q[1])
    y = mb.tensor("y", shape, dtype, scale=out_q[0], zero_point=out_q[1])
    mb.op("EXP", [x], [y])
    mb.outputs.append(y)
    return mb.build()


@pytest.mark.parametrize("path", FLOAT_PATHS)
def test_exp_float(path):
    """libm's expf over its whole range (underflow to subnormals and 0, overflow to inf), the
    points near ties that float64 rounding would get wrong, and the specials."""
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(-110, 95, 20000), rng.normal(0, 3, 5000)]).astype(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72283, 88.72284, -87.33655, -103.97208,
                         -103.97209, 1e-30, -1e-30, 1e-40], np.float32)
    x = np.concatenate([x, specials])
    assert_bit_exact(_exp_model(x.shape, np.float32), [x], path=path)


@pytest.mark.parametrize("path", PATHS)
def test_exp_int8(path):
    """The 256-entry table of every input value under random quantizations, overflowing ones
    (exp beyond int32 or inf, which LiteRT's table saturates to 127) included."""
    rng = np.random.default_rng(13 + PATHS.index(path))
    every = np.arange(-128, 128, dtype=np.int8)
    for case in range(40):
        in_q = (float(rng.choice([0.01, 0.05, 0.1, 0.5, 1.0, 3.0])), int(rng.integers(-128, 128)))
        out_q = (float(rng.choice([0.001, 0.01, 0.1, 1.0, 100.0, 1e30])), int(rng.integers(-128, 128)))
        assert_bit_exact(_exp_model(every.shape, np.int8, in_q, out_q), [every], path=path)


# --- quantized DIV ---------------------------------------------------------------------------------

def _div_model(sa, sb, dtype, q1, q2, qo, act="NONE"):
    mb = ModelBuilder()
    a = mb.input("a", sa, dtype, scale=q1[0], zero_point=q1[1])
    b = mb.input("b", sb, dtype, scale=q2[0], zero_point=q2[1])
    y = mb.tensor("y", np.broadcast_shapes(sa, sb), dtype, scale=qo[0], zero_point=qo[1])
    mb.op("DIV", [a, b], [y], fused_activation_function=act)
    mb.outputs.append(y)
    return mb.build()


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantized_div_every_pair(dtype):
    """Every (dividend, divisor) pair but a zero divisor, under quantizations whose rescale shifts
    right by up to 44 bits (beyond 31 LiteRT's shifts are undefined in C; measured), on each path
    (LiteRT's optimized DIV and XNNPACK, which does not take it, run the same arithmetic)."""
    rng = np.random.default_rng(71 + (dtype == np.uint8))
    info = np.iinfo(dtype)
    values = np.arange(256, dtype=np.uint8).view(dtype)
    a_all, b_all = np.repeat(values, 256), np.tile(values, 256)
    for case in range(4):
        q1 = (float(rng.choice([0.01, 0.1, 0.5, 2.0])), int(rng.integers(info.min, int(info.max) + 1)))
        q2 = (float(rng.choice([0.01, 0.1, 0.5, 2.0])), int(rng.integers(info.min, int(info.max) + 1)))
        qo = (float(rng.choice([0.001, 0.01, 0.1, 1.0, 10.0])), int(rng.integers(info.min, int(info.max) + 1)))
        keep = b_all.astype(np.int64) != q2[1]
        a, b = a_all[keep], b_all[keep]
        model = _div_model(a.shape, b.shape, dtype, q1, q2, qo)
        for path in PATHS:
            assert_bit_exact(model, [a, b], path=path)
    keep = b_all.astype(np.int64) != 5
    for out_scale in (2.0 ** -20, 1e-9):  # a scale ratio of ~1e5 and ~1e11: shifts of -5 and -15 bits
        model = _div_model((int(keep.sum()),), (int(keep.sum()),), dtype, (4.0, 3), (0.02, 5), (out_scale, 9))
        assert_bit_exact(model, [a_all[keep], b_all[keep]])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantized_div_broadcast_activations(dtype):
    rng = np.random.default_rng(73 + (dtype == np.uint8))
    info = np.iinfo(dtype)
    for case in range(20):
        sa, sb = _shapes(rng)
        if case % 2:
            sa, sb = sb, sa
        q1, q2, qo = _random_sub_quantization(rng, dtype, case + 1 if case % 7 == 2 else case)
        va = rng.integers(info.min, int(info.max) + 1, size=sa).astype(dtype)
        vb = rng.integers(info.min, int(info.max) + 1, size=sb).astype(dtype)
        vb = np.where(vb == q2[1], q2[1] + (1 if q2[1] < info.max else -1), vb).astype(dtype)
        model = _div_model(sa, sb, dtype, q1, q2, qo, ACTS[case % 4])
        for path in PATHS:
            assert_bit_exact(model, [va, vb], path=path)


def test_quantized_div_zero_divisor_is_a_typed_error():
    """LiteRT checks every stored divisor against its zero point and fails the invoke; refnet
    raises OpExecutionError."""
    model = _div_model((3,), (3,), np.uint8, (0.1, 3), (0.2, 7), (0.05, 10))
    with pytest.raises(OpExecutionError, match="division by zero"):
        run_refnet(model, [np.array([1, 2, 3], np.uint8), np.array([8, 7, 9], np.uint8)])
    with pytest.raises(RuntimeError, match="zero_point"):
        run_litert(model, [np.array([1, 2, 3], np.uint8), np.array([8, 7, 9], np.uint8)])
    # A scale ratio of ~1e22: shifts beyond what was measured (C leaves them undefined)
    model = _div_model((3,), (3,), np.int8, (4.0, 3), (0.02, 5), (1e-20, 9))
    with pytest.raises(OpExecutionError, match="measured for -32 to 63"):
        run_refnet(model, [np.array([1, 2, 3], np.int8), np.array([8, 7, 9], np.int8)])
