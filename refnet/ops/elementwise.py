"""ADD and MUL: float32, int8, uint8 (plus plain int32/int64), with NumPy broadcasting.

Reference semantics (LiteRT BUILTIN_REF, add.cc / mul.cc and reference/{add,mul}.h):
  float32  a + b (a * b) in float32, then the fused activation clamp
           min(max(v, lo), hi) with C++ std::max/std::min semantics: NaN passes through,
           +-inf becomes +-FLT_MAX even without an activation.
  int32/64 wrapping a + b (a * b), then the activation clamp (RELU6 -> [0, 6]).
  ADD int8/uint8
           both inputs are moved onto a common scale 2 * max(s1, s2) with 20 bits of headroom:
             x_i = (q_i - zp_i) * 2**20
             y_i = MBQM(x_i, m_i, e_i)        m_i, e_i from s_i / (2 * max(s1, s2))  (<= 1/2)
             out = clamp(MBQM(y_1 + y_2, m_o, e_o) + zp_out)
                                              m_o, e_o from 2 * max(s1, s2) / (2**20 * s_out)
           The three real multipliers are computed in double from the float32 scales; note that
           2 * max(s1, s2) and 2**20 * s_out are float32 products (exact powers of two).
  MUL int8/uint8
           out = clamp(zp_out + MBQM((q1 - zp1) * (q2 - zp2), m, e)), where m, e come from the
           float32 expression s1 * s2 / s_out (rounded to float32 twice), widened to double.
           The multiplier may exceed 1: MBQM then shifts left first, wrapping at 32 bits like
           the reference's int32 `x * (1 << shift)`.
  SUB int8/uint8
           ADD's arithmetic with input2's offset value negated: LiteRT's reference SUB subtracts
           the two rescaled inputs, and MBQM is odd (ties away from zero on both sides), so
           MBQM(-x) = -MBQM(x). Unlike ADD, the output multiplier may exceed 1
           (QuantizeMultiplierGreaterThanOne), and the rescale that follows only divides: what a
           build computes then is its profile's Form.SUB_ABOVE_ONE_* (fixedpoint.
           multiply_by_quantized_multiplier_smaller_than_one_exp). LiteRT's optimized kernels
           run the reference code for 8-bit SUB (sub.cc calls reference_ops for int8 and uint8).
MBQM is the profile's MultiplyByQuantizedMultiplier (double rounding on the reference path).

int16 (16x8 models; quantized16 plan, the *_int16 functions below):
  ADD general   as the 8-bit ADD with 15 bits of headroom instead of 20 (65535 * 2**15 < 2**31),
                the output multiplier from 2 * max(s1, s2) / (2**15 * s_out).
  ADD pot       the option pot_scale_int16 (the schema's default) with power-of-two scales and
                zero points 0: the input with the smaller scale is divided by 2**k (gemmlowp's
                int16 RoundingDivideByPOT), then a saturating int16 add; same shapes only.
  MUL           the 8-bit MUL's arithmetic on int16 values (the product fits int32).
  SUB           as ADD, the rescaled inputs subtracted (binary.py registers SUB and calls these);
                the pot path subtracts with int16 saturation.

Where LiteRT aborts, refnet raises OpExecutionError at allocate_tensors instead:
  ADD   the output multiplier 2 * max(s1, s2) / (2**20 * s_out) is >= 1 (the output scale is
        ~2**-19 of the input scales or less): QuantizeMultiplierSmallerThanOneExp's CHECK fails.
  MUL   a multiplier that is not finite or needs a left shift above 31.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast, requantize
from ..fixedpoint import (multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_smaller_than_one_exp,
                          quantize_multiplier, round_half_away, rounding_divide_by_pot_int16)
from ..forms import Form, max_shift
from ..profile import SUB_ABOVE_ONE  # the profile variant of an 8-bit SUB with an output multiplier > 1
from . import OpContext, float_activation_range, per_tensor_quantization, quantized_activation_range, quieted, register

# LiteRT's broadcasting kernels (BroadcastAdd6DSlow, BroadcastMul6DSlow) stop at rank 6.
MAX_BROADCAST_RANK = 6
ADD_LEFT_SHIFT = 20  # headroom bits of the 8-bit quantized ADD
ADD_LEFT_SHIFT_INT16 = 15  # and of the int16 general ADD


@dataclass
class ElementwisePlan:
    mode: str  # "float", "int", "quantized", "int16 general", "int16 pot"
    out_shape: tuple
    act_range: tuple = (0, 0)
    rounding: int = Form.ROUNDING_DOUBLE
    zero_points: tuple = (0, 0, 0)  # input1, input2, output
    input_multipliers: tuple = ()  # ADD: ((m1, e1), (m2, e2))
    output_multiplier: tuple = (0, 0)
    fp32_scale: float = 0.0  # MUL under Form.ROUNDING_FP32 (XNNPACK): f32(f32(s1*s2)/s_out)
    # 8-bit ADD / MUL in a fixed-point form: the op's output for every input pair (q1, q2), row q1
    # and column q2 read as uint8, tabulated at prepare by the op's own arithmetic (pair_table)
    table: np.ndarray | None = None
    table_swapped: np.ndarray | None = None  # the same, row q2 and column q1 (made at first use)
    # 8-bit SUB whose output multiplier exceeds 1: the build's Form.SUB_ABOVE_ONE_* (0 otherwise)
    sub_above_one: int = 0


def clamp_like_cpp(x: np.ndarray, lo, hi) -> np.ndarray:
    """std::min(std::max(x, lo), hi): max keeps x unless x < lo, min keeps it unless hi < it.

    So NaN passes through unchanged (both comparisons are false), as in TFLite.
    """
    lo = x.dtype.type(lo)
    hi = x.dtype.type(hi)
    y = np.where(x < lo, lo, x)
    return np.where(hi < y, hi, y)


def int_activation_range(ctx: OpContext, dtype) -> tuple[int, int]:
    """CalculateActivationRange<int32/int64>: RELU [0, max], RELU6 [0, 6], RELU_N1_TO_1 [-1, 1]."""
    act = ctx.op.options.get("fused_activation_function", "NONE")
    info = np.iinfo(dtype)
    ranges = {"NONE": (info.min, info.max), "RELU": (0, info.max), "RELU6": (0, 6),
              "RELU_N1_TO_1": (-1, 1)}
    if act not in ranges:
        raise ctx.unsupported(f"fused activation {act} is not supported")
    return ranges[act]


def checked_quantized_activation_range(ctx: OpContext, t) -> tuple[int, int]:
    """The fused activation's clamp range; like LiteRT, refuse bounds that overflow int32."""
    act = ctx.op.options.get("fused_activation_function", "NONE")
    scale = np.float32(t.quantization.scalar()[0])
    bounds = {"RELU": (0.0,), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}.get(act, ())
    with np.errstate(all="ignore"):
        steps = [abs(float(np.float32(b) / scale)) for b in bounds]
    if any(s >= 2.0 ** 31 for s in steps):
        raise ctx.fail(f"fused {act} bound is {max(steps):g} output steps away from the zero point "
                       f"(scale {float(scale):g}): beyond int32, LiteRT rejects this model")
    return quantized_activation_range(ctx, t)


def _broadcast_shape(ctx: OpContext, a_t, b_t) -> tuple:
    if a_t.shape == b_t.shape:
        return tuple(a_t.shape)
    try:
        shape = np.broadcast_shapes(a_t.shape, b_t.shape)
    except ValueError:
        raise ctx.fail(f"input shapes {list(a_t.shape)} and {list(b_t.shape)} do not broadcast") from None
    if len(shape) > MAX_BROADCAST_RANK:
        raise ctx.unsupported(f"broadcasting at rank {len(shape)} (LiteRT stops at {MAX_BROADCAST_RANK})")
    return tuple(shape)


def prepare_elementwise(ctx: OpContext) -> ElementwisePlan:
    """ADD, MUL, and 8-bit SUB (refnet/ops/binary.py hands it over)."""
    kind = ctx.op.kind
    if len(ctx.op.inputs) != 2 or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"{kind} takes 2 inputs and 1 output, got {len(ctx.op.inputs)} and "
                       f"{len(ctx.op.outputs)}")
    a_t, b_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    if a_t is None or b_t is None:
        raise ctx.fail("an input tensor is missing")
    if not (a_t.dtype == b_t.dtype == y_t.dtype):
        raise ctx.unsupported(f"inputs {a_t.dtype.name}, {b_t.dtype.name} and output "
                              f"{y_t.dtype.name} (refnet needs one dtype)")
    out_shape = _broadcast_shape(ctx, a_t, b_t)
    if tuple(y_t.shape) != out_shape:
        raise ctx.fail(f"output shape {list(y_t.shape)} is not the broadcast shape {list(out_shape)}")
    dtype = y_t.dtype
    if dtype == np.float32:
        return ElementwisePlan("float", out_shape, act_range=float_activation_range(ctx))
    if dtype in (np.int32, np.int64):
        return ElementwisePlan("int", out_shape, act_range=int_activation_range(ctx, dtype))
    if dtype == np.int16:
        return prepare_int16(ctx, a_t, b_t, y_t, out_shape)
    if dtype not in (np.int8, np.uint8):
        raise ctx.unsupported(f"{kind} on {dtype.name}")

    s1, zp1 = per_tensor_quantization(ctx, a_t, "input1")
    s2, zp2 = per_tensor_quantization(ctx, b_t, "input2")
    so, zpo = per_tensor_quantization(ctx, y_t, "output")
    rounding = ctx.profile.rounding(kind, y_t.dtype)
    if rounding == Form.ADD_XNNPACK and kind == "ADD":  # XNNPACK's vadd
        plan = ElementwisePlan("quantized", out_shape, act_range=checked_quantized_activation_range(ctx, y_t),
                               rounding=rounding, zero_points=(zp1, zp2, zpo))
        plan.input_multipliers = requantize.add_xnnpack_params(s1, s2, so)
        return plan
    if rounding == Form.ADD_XNNPACK and kind == "SUB":  # XNNPACK's vadd with input2's scale negated
        try:
            params = requantize.add_xnnpack_params(s1, -s2, so)
        except ValueError:  # XNNPACK leaves the node to LiteRT's kernel: the reference arithmetic
            rounding = Form.ROUNDING_DOUBLE
        else:
            plan = ElementwisePlan("quantized", out_shape, act_range=checked_quantized_activation_range(ctx, y_t),
                                   rounding=rounding, zero_points=(zp1, zp2, zpo))
            plan.input_multipliers = params
            return plan
    if rounding == Form.ROUNDING_FP32 and kind == "MUL":  # XNNPACK's fp32 MUL
        plan = ElementwisePlan("quantized", out_shape, act_range=checked_quantized_activation_range(ctx, y_t),
                               rounding=rounding, zero_points=(zp1, zp2, zpo))
        plan.fp32_scale = requantize.fp32_scale(s1, s2, so)
        return plan
    floor_blocks = rounding == Form.ADD_INPUT_SHIFT_FLOOR_8 and kind == "ADD"
    if floor_blocks:  # the optimized same-shape ADD; a broadcast ADD is the reference arithmetic
        rounding = Form.ROUNDING_DOUBLE
        floor_blocks = tuple(a_t.shape) == tuple(b_t.shape) == tuple(out_shape)
    if not rounding.is_fixed_point:
        raise ctx.unsupported(f"form {rounding.name} for {kind}")
    plan = ElementwisePlan("quantized", out_shape, act_range=checked_quantized_activation_range(ctx, y_t),
                           rounding=rounding, zero_points=(zp1, zp2, zpo))
    f32 = np.float32
    if kind in ("ADD", "SUB"):
        # float32 arithmetic where the C++ multiplies float by int, double elsewhere.
        twice_max_input_scale = float(f32(2) * max(f32(s1), f32(s2)))
        real_input1 = float(f32(s1)) / twice_max_input_scale
        real_input2 = float(f32(s2)) / twice_max_input_scale
        with np.errstate(over="ignore"):
            denominator = float(f32(1 << ADD_LEFT_SHIFT) * f32(so))
        real_output = twice_max_input_scale / denominator
        if kind == "SUB" and real_output >= 1.0:
            if not np.isfinite(real_output) or quantize_multiplier(real_output)[1] > 31:
                raise ctx.arithmetic_error(
                    f"output multiplier 2*max(s1, s2)/(2**20*s_out) = {real_output:g} is beyond what "
                    f"QuantizeMultiplierGreaterThanOne can express")
            plan.sub_above_one = ctx.profile.rounding(kind, dtype, SUB_ABOVE_ONE)
            if plan.sub_above_one != Form.SUB_ABOVE_ONE_SIGN:
                raise ctx.unsupported(
                    f"output multiplier 2*max(s1, s2)/(2**20*s_out) = {real_output:g} is above 1: what LiteRT "
                    f"computes then is undefined in C and not measured for {ctx.profile.name}")
        elif not 0.0 < real_output < 1.0:
            raise ctx.arithmetic_error(
                f"output multiplier 2*max(s1, s2)/(2**20*s_out) = {real_output:g} is not below 1 "
                f"(scales {s1:g}, {s2:g} -> {so:g}); LiteRT's reference ADD aborts on this model")
        plan.input_multipliers = (quantize_multiplier(real_input1), quantize_multiplier(real_input2))
        plan.output_multiplier = quantize_multiplier(real_output)
        if floor_blocks:
            plan.rounding = Form.ADD_INPUT_SHIFT_FLOOR_8
        # three MultiplyByQuantizedMultiplier per element: a table of every pair is cheaper
        plan.table = pair_table(ctx, plan, dtype)
    else:  # MUL: the product and quotient are float32 operations in the C++.
        with np.errstate(all="ignore"):
            real = float(f32(f32(s1) * f32(s2)) / f32(so))
        if not np.isfinite(real):
            raise ctx.arithmetic_error(f"multiplier s1*s2/s_out = {real} (scales {s1:g}, {s2:g} -> "
                                       f"{so:g}) is not finite")
        multiplier, shift = quantize_multiplier(real)
        if shift > 31:
            raise ctx.arithmetic_error(f"multiplier s1*s2/s_out = {real:g} needs a left shift of "
                                       f"{shift} (> 31), which the int32 arithmetic cannot express")
        plan.output_multiplier = (multiplier, shift)
        plan.table = pair_table(ctx, plan, dtype)  # one table read beats the vector MBQM too
    return plan


def _mbqm(x, multiplier_and_shift, rounding) -> np.ndarray:
    multiplier, shift = multiplier_and_shift
    return multiply_by_quantized_multiplier(x, multiplier, shift, rounding).astype(np.int64)


def quantized_add(plan: ElementwisePlan, a: np.ndarray, b: np.ndarray, subtract: bool = False) -> np.ndarray:
    """The raw (zero point added, not clamped) int64 ADD result, or SUB's with subtract=True
    (ADD_XNNPACK's SUB parameters carry the negated scale already); broadcasts (any shapes)."""
    zp1, zp2, zpo = plan.zero_points
    if plan.rounding == Form.ADD_XNNPACK:
        return requantize.add_xnnpack(a, zp1, b, zp2, plan.input_multipliers, zpo)
    if plan.rounding == Form.ADD_INPUT_SHIFT_FLOOR_8:
        return requantize.add_input_shift_floor_8(a, zp1, b, zp2, plan.input_multipliers, plan.output_multiplier,
                                                  zpo, ADD_LEFT_SHIFT)
    (m1, m2), r = plan.input_multipliers, plan.rounding
    # SUB rescales input2's negated offset value (MBQM is odd: see the module docstring).
    sign2 = -1 if subtract else 1
    # |q - zp| <= 255, so the shifted values stay below 2**28: no int32 overflow.
    scaled1 = _mbqm((a.astype(np.int64) - zp1) << ADD_LEFT_SHIFT, m1, r)
    scaled2 = _mbqm(sign2 * ((b.astype(np.int64) - zp2) << ADD_LEFT_SHIFT), m2, r)
    raw_sum = scaled1 + scaled2  # broadcasts; each term is below 2**27 in magnitude
    multiplier, shift = plan.output_multiplier
    if subtract and shift > 0:  # an output multiplier above 1 (ADD refuses it): undefined in C, measured
        return multiply_by_quantized_multiplier_smaller_than_one_exp(raw_sum, multiplier, shift,
                                                                     plan.sub_above_one).astype(np.int64) + zpo
    return _mbqm(raw_sum, plan.output_multiplier, r) + zpo


def quantized_mul(plan: ElementwisePlan, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The raw (zero point added, not clamped) int64 MUL result; broadcasts (any shapes)."""
    zp1, zp2, zpo = plan.zero_points
    product = (a.astype(np.int64) - zp1) * (b.astype(np.int64) - zp2)  # |.| <= 255**2
    if plan.rounding == Form.ROUNDING_FP32:
        return requantize.rint_scaled_fp32(product, plan.fp32_scale) + zpo
    return _mbqm(product, plan.output_multiplier, plan.rounding) + zpo


def _fast_quantized(ctx: OpContext, plan: ElementwisePlan, a: np.ndarray, b: np.ndarray, is_add: bool,
                    shape: tuple | None = None):
    """The same arithmetic in _kernels_fast when one input has the output's shape (`shape`, by
    default the plan's) and the other repeats over its leading dimensions (same shape, or e.g. a
    per-channel (1, 1, 1, C) factor). None when the kernel does not take this case (then NumPy
    below computes it): a form it does not implement, a shift outside the form's range, zero
    points outside the type, or shapes it cannot stream."""
    floor8 = plan.rounding == Form.ADD_INPUT_SHIFT_FLOOR_8  # same shapes only (see prepare)
    xnn_add = plan.rounding == Form.ADD_XNNPACK and is_add
    fp32_mul = plan.rounding == Form.ROUNDING_FP32 and not is_add
    info = np.iinfo(a.dtype)
    zps = plan.zero_points
    if not all(info.min <= z <= info.max for z in zps):
        return None
    if xnn_add:
        ma, mb, xshift = plan.input_multipliers
        m, output = ((ma, xshift), (mb, xshift)), (0, 0)
    elif fp32_mul:
        m, output = ((0, 0), (0, 0)), (0, 0)
    else:
        if not plan.rounding.is_fixed_point and not floor8:
            return None
        pairs = (*plan.input_multipliers, plan.output_multiplier) if is_add else (plan.output_multiplier,)
        top = max_shift(Form.ROUNDING_DOUBLE if floor8 else plan.rounding)
        if any(not -31 <= shift <= top for _, shift in pairs):
            return None
        m, output = (plan.input_multipliers if is_add else ((0, 0), (0, 0))), plan.output_multiplier
    if max(plan.act_range[0], info.min) > min(plan.act_range[1], info.max):  # an empty clamp range
        return None
    shape = plan.out_shape if shape is None else shape
    if tuple(a.shape) != shape:
        if tuple(b.shape) != shape:
            return None
        a, b = b, a
        first, second = 1, 0
    else:
        first, second = 0, 1
    trailing = tuple(b.shape)
    while trailing and trailing[0] == 1:
        trailing = trailing[1:]
    if b.size == 0 or (trailing and shape[len(shape) - len(trailing):] != trailing):
        return None
    b = np.ascontiguousarray(b).reshape(-1)
    if b.size < 64 and b.size != a.size:  # a short period: repeat it (the same pairs) to stream
        repeats = a.size // b.size
        t = next(t for t in range(max(1, 64 // b.size), 0, -1) if repeats % t == 0)
        b = np.tile(b, t)
    out = np.empty(shape, a.dtype)
    _kernels_fast.elementwise_q(np.ascontiguousarray(a), b, out, not is_add,
                                zps[first], zps[second], zps[2], m[first], m[second],
                                output, *plan.act_range, int(plan.rounding),
                                max(1, ctx.num_threads), float(plan.fp32_scale))
    return out


def _quantized_values(ctx: OpContext, plan: ElementwisePlan, a: np.ndarray, b: np.ndarray, is_add: bool,
                      shape: tuple) -> np.ndarray:
    """The 8-bit op on a and b (broadcasting to `shape`): _kernels_fast when it takes the case,
    else NumPy."""
    out = None if ctx.op.kind == "SUB" else _fast_quantized(ctx, plan, a, b, is_add, shape)
    if out is not None:
        return out
    lo, hi = plan.act_range
    raw = _quantized_raw(ctx, plan, a, b)
    return np.broadcast_to(np.minimum(hi, np.maximum(lo, raw)), shape).astype(a.dtype)


def _quantized_raw(ctx: OpContext, plan: ElementwisePlan, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The op's raw (zero point added, not clamped) int64 result in NumPy."""
    if ctx.op.kind == "MUL":
        return quantized_mul(plan, a, b)
    return quantized_add(plan, a, b, subtract=ctx.op.kind == "SUB")


def pair_table(ctx: OpContext, plan: ElementwisePlan, dtype) -> np.ndarray:
    """The 8-bit op's output for every input pair: entry 256 * u1 + u2 is out(q1, q2) where u1, u2
    are q1, q2 read as uint8 (65536 entries of `dtype`). Computed by the op's own arithmetic
    (_quantized_values) on the 65536 pairs as one flat same-shape operation: a multiple of 8 long,
    so under ADD_INPUT_SHIFT_FLOOR_8 every pair is in a whole 8-element block (run uses the
    table for those elements only)."""
    values = np.arange(256, dtype=np.uint8).view(dtype)
    first, second = np.repeat(values, 256), np.tile(values, 256)
    return _quantized_values(ctx, plan, first, second, ctx.op.kind == "ADD", (65536,))


def _table_quantized(ctx: OpContext, plan: ElementwisePlan, a: np.ndarray, b: np.ndarray):
    """plan.table looked up (_kernels_fast.lut16) when one input has the output's shape and the
    other repeats over its leading dimensions; None otherwise."""
    shape = plan.out_shape
    table = plan.table
    if tuple(a.shape) != shape:
        if tuple(b.shape) != shape:
            return None
        a, b = b, a
        if plan.table_swapped is None:  # out(q1, q2) looked up as (q2, q1)
            plan.table_swapped = np.ascontiguousarray(plan.table.reshape(256, 256).T).reshape(-1)
        table = plan.table_swapped
    trailing = tuple(b.shape)
    while trailing and trailing[0] == 1:
        trailing = trailing[1:]
    if b.size == 0 or (trailing and shape[len(shape) - len(trailing):] != trailing):
        return None
    out = np.empty(shape, a.dtype)
    _kernels_fast.lut16(table, np.ascontiguousarray(a), np.ascontiguousarray(b).reshape(-1), out, ctx.num_threads)
    if plan.rounding == Form.ADD_INPUT_SHIFT_FLOOR_8:  # the tail beyond whole 8-element blocks
        blocked = out.size // 8 * 8
        if blocked < out.size:
            flat_a, flat_b = a.reshape(-1)[blocked:], np.broadcast_to(b, shape).reshape(-1)[blocked:]
            out.reshape(-1)[blocked:] = _quantized_values(ctx, plan, flat_a, flat_b, True, flat_a.shape)
    return out


def _keep_profile_nan(total: np.ndarray, a: np.ndarray, b: np.ndarray, block: int) -> np.ndarray:
    """Where a and b are both NaN, the NaN the runtime keeps (Profile.float_nan_blocks): b's at
    the positions in whole blocks of `block` (of the flat array for equal shapes, else of each
    innermost row when both have it), a's elsewhere; quieted, as x86 returns it.  For the float
    broadcasts _fast_float does not take (there nan_second_run says)."""
    both = np.isnan(a) & np.isnan(b)
    if not both.any():
        return total
    shape = total.shape
    second = np.zeros(shape, bool)
    if block > 0 and a.shape == b.shape:
        n = total.size
        second = (np.arange(n) < (n // block) * block).reshape(shape)
    elif block > 0 and shape and a.shape[-1:] == b.shape[-1:] == shape[-1:]:
        second = np.broadcast_to(np.arange(shape[-1]) < (shape[-1] // block) * block, shape)
    winner = quieted(np.where(second, np.broadcast_to(b, shape), np.broadcast_to(a, shape)).astype(total.dtype))
    return np.where(np.broadcast_to(both, shape), winner, total)


def _repeats_within(small: np.ndarray, shape: tuple) -> bool:
    """small broadcast to shape is small's flat values repeated: its shape (left-padded with 1s)
    is 1s followed by shape's trailing dimensions."""
    dims = (1,) * (len(shape) - small.ndim) + small.shape
    lead = 0
    while lead < len(dims) and dims[lead] == 1 and lead < len(shape):
        lead += 1
    return len(dims) == len(shape) and dims[lead:] == tuple(shape[lead:])


def nan_second_run(profile, kind: str, a_size: int, b_size: int, n: int) -> tuple[int, int]:
    """(run, limit): where both operands of a float ADD / MUL are NaN, the profile keeps b's NaN at
    the flat output positions i with i % run < limit, a's elsewhere (Profile.float_nan_blocks for
    equal shapes, float_nan_broadcast_blocks when one operand of a_size / b_size values repeats
    along the other's n)."""
    if a_size == b_size == n:
        block = profile.nan_block(kind)
        return n, (n // block) * block if block else 0
    block = profile.nan_broadcast_block(kind)
    if not block:
        return n, 0
    if a_size == 1:
        return n, n
    period = b_size if a_size == n else a_size
    return period, (period // block) * block


def _fast_float(ctx: OpContext, plan: ElementwisePlan, a: np.ndarray, b: np.ndarray, is_add: bool) -> np.ndarray | None:
    """float32 a + b (a * b) and the clamp in one pass of _kernels_fast.binary_f, when one operand
    has the output's shape and the other repeats along it; else None.  A NaN operand's NaN,
    quieted; where both are NaN, the one nan_second_run says."""
    shape = tuple(plan.out_shape)
    if a.dtype != np.float32 or b.dtype != np.float32 or not shape:
        return None
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if not ((a.shape == shape and _repeats_within(b, shape)) or (b.shape == shape and _repeats_within(a, shape))):
        return None
    if a.size == 0 or b.size == 0:
        return None
    lo, hi = plan.act_range
    run, limit = nan_second_run(ctx.profile, ctx.op.kind, a.size, b.size, math.prod(shape))
    out = np.empty(shape, np.float32)
    _kernels_fast.binary_f(a, b, out, not is_add, lo, hi, run, limit, ctx.num_threads)
    return out


def _run(ctx: OpContext, inputs: list) -> list:
    plan: ElementwisePlan = ctx.params
    a, b = inputs
    dtype = ctx.output_tensor().dtype
    lo, hi = plan.act_range
    is_add = ctx.op.kind == "ADD"
    if plan.mode in ("int16 general", "int16 pot"):
        return [run_int16(plan, a, b, ctx.op.kind)]
    if plan.mode == "quantized" and a.dtype == b.dtype == dtype and dtype in (np.int8, np.uint8):
        out = None if plan.table is None else _table_quantized(ctx, plan, a, b)
        if out is None and ctx.op.kind != "SUB":
            out = _fast_quantized(ctx, plan, a, b, is_add)
        if out is not None:
            return [out]
    if plan.mode == "quantized":
        raw = _quantized_raw(ctx, plan, a, b)
        out = np.minimum(hi, np.maximum(lo, raw))
        return [np.broadcast_to(out, plan.out_shape).astype(dtype)]
    if plan.mode == "float":
        out = _fast_float(ctx, plan, a, b, is_add)
        if out is not None:
            return [out]
    with np.errstate(all="ignore"):  # float overflow to inf, int wrap-around: both intended
        raw = np.add(a, b, dtype=dtype) if is_add else np.multiply(a, b, dtype=dtype)
    if plan.mode == "float":
        raw = _keep_profile_nan(np.asarray(raw, dtype), a, b, ctx.profile.nan_block(ctx.op.kind))
    out = clamp_like_cpp(np.asarray(raw, dtype), lo, hi)
    return [np.broadcast_to(out, plan.out_shape).copy()]  # .copy(): contiguous, keeps rank 0


# --- int16 (16x8 models) ---------------------------------------------------------------------


def checked_log2(scale) -> tuple[bool, int]:
    """TFLite's CheckedLog2 in float32: (|log2(s) - round(log2(s))| < 1e-3, round(log2(s)))."""
    f32 = np.float32
    with np.errstate(all="ignore"):
        log2 = f32(np.log(f32(scale)) * f32(f32(1.0) / np.log(f32(2.0))))
    rounded = round_half_away(log2)
    return bool(abs(f32(log2 - rounded)) < f32(1e-3)), int(rounded)


def prepare_int16(ctx: OpContext, a_t, b_t, y_t, out_shape) -> ElementwisePlan:
    """int16 ADD and SUB (general or power-of-two path, as LiteRT's Prepare picks) and MUL."""
    kind = ctx.op.kind
    s1, zp1 = per_tensor_quantization(ctx, a_t, "input1")
    s2, zp2 = per_tensor_quantization(ctx, b_t, "input2")
    so, zpo = per_tensor_quantization(ctx, y_t, "output")
    if (zp1, zp2, zpo) != (0, 0, 0):
        raise ctx.fail(f"int16 {kind} needs zero points 0, got {zp1}, {zp2} and {zpo}")
    act_range = checked_quantized_activation_range(ctx, y_t)
    rounding = ctx.profile.rounding(kind, y_t.dtype)
    if rounding == Form.ADD_INT16_INPUT_SHIFT_16:  # the optimized same-shape ADD; broadcasts: reference
        same_shapes = kind == "ADD" and tuple(a_t.shape) == tuple(b_t.shape) == tuple(out_shape)
        rounding = Form.ADD_INT16_INPUT_SHIFT_16 if same_shapes else Form.ROUNDING_DOUBLE
    elif not rounding.is_fixed_point:
        raise ctx.unsupported(f"form {rounding.name} for int16 {kind}")
    f32 = np.float32
    if kind == "MUL":
        plan = ElementwisePlan("int16 general", out_shape, act_range=act_range, rounding=rounding)
        with np.errstate(all="ignore"):
            real = float(f32(f32(s1) * f32(s2)) / f32(so))
        if not np.isfinite(real):
            raise ctx.arithmetic_error(f"multiplier s1*s2/s_out = {real} is not finite")
        multiplier, shift = quantize_multiplier(real)
        if shift > 31:
            raise ctx.arithmetic_error(f"multiplier s1*s2/s_out = {real:g} needs a left shift of {shift} (> 31)")
        plan.output_multiplier = (multiplier, shift)
        return plan
    logs = [checked_log2(s) for s in (s1, s2, so)]
    if ctx.op.options.get("pot_scale_int16", True) and all(exact for exact, _ in logs):
        shift1, shift2 = logs[0][1] - logs[2][1], logs[1][1] - logs[2][1]
        if not (shift1 == 0 or shift2 == 0) or shift1 > 0 or shift2 > 0:
            raise ctx.fail(f"power-of-two int16 {kind}: input shifts {shift1}, {shift2} must be <= 0 and one "
                           f"of them 0 (LiteRT rejects others)")
        if not tuple(a_t.shape) == tuple(b_t.shape) == tuple(out_shape):
            raise ctx.unsupported(f"power-of-two int16 {kind} with broadcasting (LiteRT reads both inputs flat)")
        return ElementwisePlan("int16 pot", out_shape, act_range=act_range, input_multipliers=(shift1, shift2))
    plan = ElementwisePlan("int16 general", out_shape, act_range=act_range, rounding=rounding)
    twice_max_input_scale = float(f32(2) * max(f32(s1), f32(s2)))
    with np.errstate(over="ignore"):
        real_output = twice_max_input_scale / float(f32(1 << ADD_LEFT_SHIFT_INT16) * f32(so))
    if not 0.0 < real_output < 1.0:
        raise ctx.arithmetic_error(f"output multiplier 2*max(s1, s2)/(2**15*s_out) = {real_output:g} is not "
                                   f"below 1 (scales {s1:g}, {s2:g} -> {so:g}); LiteRT's ADD aborts on this model")
    plan.input_multipliers = (quantize_multiplier(float(f32(s1)) / twice_max_input_scale),
                              quantize_multiplier(float(f32(s2)) / twice_max_input_scale))
    plan.output_multiplier = quantize_multiplier(real_output)
    return plan


def run_int16(plan: ElementwisePlan, a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    """The int16 ADD, SUB or MUL of an int16 plan (zero points 0), clamped, broadcast."""
    lo, hi = plan.act_range
    sign = -1 if kind == "SUB" else 1
    if plan.mode == "int16 pot":
        shift1, shift2 = plan.input_multipliers
        # the input with the finer scale is divided onto the other's (which is the output's)
        first = rounding_divide_by_pot_int16(a, -shift1).astype(np.int64) if shift1 else a.astype(np.int64)
        second = rounding_divide_by_pot_int16(b, -shift2).astype(np.int64) if shift2 else b.astype(np.int64)
        total = np.clip(first + sign * second, -(2**15), 2**15 - 1)  # SaturatingAdd / SaturatingSub
        return np.minimum(hi, np.maximum(lo, total)).astype(np.int16)
    r = plan.rounding
    if r == Form.ADD_INT16_INPUT_SHIFT_16:
        raw = requantize.add_int16_input_shift_16(a, b, plan.input_multipliers, plan.output_multiplier,
                                                  ADD_LEFT_SHIFT_INT16)
    elif kind in ("ADD", "SUB"):
        (m1, m2) = plan.input_multipliers
        scaled1 = _mbqm(a.astype(np.int64) << ADD_LEFT_SHIFT_INT16, m1, r)  # |.| <= 2**30
        scaled2 = _mbqm(b.astype(np.int64) << ADD_LEFT_SHIFT_INT16, m2, r)
        raw = _mbqm(scaled1 + sign * scaled2, plan.output_multiplier, r)
    else:
        raw = _mbqm(a.astype(np.int64) * b.astype(np.int64), plan.output_multiplier, r)  # |.| <= 2**30
    out = np.minimum(hi, np.maximum(lo, raw))
    return np.broadcast_to(out, plan.out_shape).astype(np.int16)


def run_elementwise(ctx: OpContext, inputs: list) -> list:
    """ADD, MUL, and 8-bit SUB (refnet/ops/binary.py hands it over)."""
    return _run(ctx, inputs)


register("ADD", prepare=prepare_elementwise)(_run)
register("MUL", prepare=prepare_elementwise)(_run)
