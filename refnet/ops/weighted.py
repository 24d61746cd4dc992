"""What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share: the weighted ops' common prepare.

- arithmetic_mode: float, hybrid (float input, int8 weights), quantized or quantized16 (16x8:
  int16 input and output, int8 weights, int64 bias), from the tensor types;
- prepare_weighted: the mode, the activation range, and for quantized ops the zero-point offsets
  and the output requantization (refnet/requantize.py), for hybrid ops hybrid.prepare_hybrid;
- padded_taps: the int16 input zero-padded for a window, and each tap's strided view of it (the
  16x8 ops sum in int64 NumPy: the fast and Cython kernels take 8-bit inputs only);
- FastConv / prepare_fast_conv: the weights packed once for _kernels_fast, when it takes the op.
Not an op: registers nothing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast
from ..forms import ORDERED, Form, max_shift
from ..requantize import quantized_output_params
from . import OpContext, float_activation_range

# Form.ROUNDING_INT64_REDUCED shifts the product right by 15 - shift: defined up to shift 14.
MAX_SHIFT_INT64_REDUCED = 14


def arithmetic_mode(ctx: OpContext, x_t, w_t, b_t, y_t) -> str:
    """"float", "hybrid" (float input, int8 weights) or "quantized" (int8 x int8, uint8 x uint8),
    from the tensor types of a conv / depthwise / fully connected op; anything else is refused."""
    if x_t.dtype == np.float32 and w_t.dtype == np.float32:
        if b_t is not None and b_t.dtype != np.float32:
            raise ctx.fail(f"a float32 op needs a float32 bias, got {b_t.dtype.name}")
        return "float"
    if x_t.dtype == np.float32 and w_t.dtype == np.int8:
        return "hybrid"
    if x_t.dtype == np.int16 and w_t.dtype == np.int8 and y_t.dtype == np.int16:
        if b_t is not None and b_t.dtype != np.int64:
            raise ctx.unsupported(f"16x8 (int16 x int8) with a {b_t.dtype.name} bias (refnet takes int64)")
        return "quantized16"
    if x_t.dtype == w_t.dtype and x_t.dtype in (np.int8, np.uint8) and y_t.dtype == x_t.dtype:
        if b_t is not None and b_t.dtype != np.int32:
            raise ctx.unsupported(f"{x_t.dtype.name} weights with a {b_t.dtype.name} bias")
        return "quantized"
    raise ctx.unsupported(f"input {x_t.dtype.name}, weights {w_t.dtype.name}, output {y_t.dtype.name}")


def zero_point_of(t) -> int:
    return int(t.quantization.zero_point[0]) if t.quantization is not None else 0


def prepare_weighted(ctx: OpContext, plan, channels: int, channel_axis: int, legacy_per_tensor: bool) -> None:
    """Fill plan.mode, .act_range, and .hybrid or (.quant, .input_offset, .filter_offset).

    legacy_per_tensor: the op uses the per-tensor arithmetic of legacy uint8 models (CONV_2D and
    DEPTHWISE_CONV_2D on uint8, FULLY_CONNECTED with per-tensor weights): the filter's zero point
    is subtracted and the multiplier starts from the float32 product of the scales.
    """
    x_t, w_t, b_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.input_tensor(2), ctx.output_tensor()
    plan.mode = arithmetic_mode(ctx, x_t, w_t, b_t, y_t)
    if plan.mode in ("float", "hybrid"):
        plan.act_range = float_activation_range(ctx)
    if plan.mode == "hybrid":
        from .hybrid import prepare_hybrid

        plan.hybrid = prepare_hybrid(ctx, w_t, b_t, channels=channels, channel_axis=channel_axis)
    elif plan.mode == "quantized":
        plan.quant = quantized_output_params(ctx, x_t, w_t, y_t, channels, channel_axis,
                                             float_product_first=legacy_per_tensor)
        plan.input_offset = -zero_point_of(x_t)
        plan.filter_offset = -zero_point_of(w_t) if legacy_per_tensor else 0
    elif plan.mode == "quantized16":
        if b_t is None and ctx.op.kind == "CONV_2D":
            raise ctx.fail("a 16x8 CONV_2D needs a bias (LiteRT rejects it without one)")
        plan.quant = prepare_16x8_output(ctx, x_t, w_t, y_t, channels, channel_axis, legacy_per_tensor)


def prepare_16x8_output(ctx: OpContext, x_t, w_t, y_t, channels: int, channel_axis: int,
                        float_product_first: bool):
    """The requantization of a 16x8 weighted op: symmetric tensors (LiteRT rejects other zero
    points), per-channel multipliers from double(s_x) * double(s_w[c]) / double(s_y) (per-tensor
    FULLY_CONNECTED: the float32 product first, as its 8-bit path), in the
    profile's form for (op kind, int16) (Form.ROUNDING_INT64_REDUCED unless it says otherwise)."""
    for t, role in ((x_t, "input"), (w_t, "filter"), (y_t, "output")):
        if t.quantization is None:
            raise ctx.fail(f"{role} tensor {t.index} '{t.name}' is {t.dtype.name} but has no quantization")
        if np.any(np.asarray(t.quantization.zero_point) != 0):
            raise ctx.fail(f"16x8: the {role} zero point must be 0 (LiteRT rejects others)")
    quant = quantized_output_params(ctx, x_t, w_t, y_t, channels, channel_axis, float_product_first)
    form = ctx.profile.rounding_16x8(ctx.op.kind)
    if form == Form.ROUNDING_INT64_REDUCED and quant.shift.size and quant.shift.max() > MAX_SHIFT_INT64_REDUCED:
        raise ctx.arithmetic_error(f"output multiplier needs a left shift of {int(quant.shift.max())}, beyond "
                                   f"{MAX_SHIFT_INT64_REDUCED}, where the int64 requantization is undefined")
    return dataclasses.replace(quant, rounding=form)


def padded_taps(x: np.ndarray, kh: int, kw: int, plan):
    """Yield (ky, kx, view): for each filter tap the (N, out_h, out_w, C) input values it reads,
    as int64, from the input zero-padded by the plan's window (padding with 0 is skipping the
    tap: 16x8 inputs have zero point 0)."""
    n, h, w, c = x.shape
    _, out_h, out_w, _ = plan.out_shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    need_h = max((out_h - 1) * sh + (kh - 1) * dh + 1, 0)
    need_w = max((out_w - 1) * sw + (kw - 1) * dw + 1, 0)
    top, left = plan.window.pad_top, plan.window.pad_left
    padded = np.zeros((n, need_h, need_w, c), np.int64)
    rows, cols = min(max(need_h - top, 0), h), min(max(need_w - left, 0), w)
    padded[:, top:top + rows, left:left + cols] = x[:, :rows, :cols]
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, padded[:, y0:y0 + (out_h - 1) * sh + 1:sh, x0:x0 + (out_w - 1) * sw + 1:sw]


def contiguous(a):
    return a if a is None or a.flags.c_contiguous else np.ascontiguousarray(a)


def weighted_inputs(inputs: list) -> tuple:
    """(input, filter, flat bias or None), each C-contiguous, for the plain kernels."""
    bias = contiguous(inputs[2].reshape(-1)) if len(inputs) > 2 and inputs[2] is not None else None
    return contiguous(inputs[0]), contiguous(inputs[1]), bias


def threads_of(ctx: OpContext) -> int:
    """The interpreter's num_threads (set on the context at allocate_tensors), default 1."""
    return max(1, ctx.num_threads)


def constant_data(ctx: OpContext, i: int):
    t = ctx.input_tensor(i)
    return None if t is None or t.data is None else np.asarray(t.data)


@dataclass
class FastConv:
    """Load-time work for _kernels_fast: packed weights, padded per-channel vectors."""

    geometry: tuple  # (kh, kw, sh, sw, dh, dw, pad_top, pad_left)
    weights: np.ndarray
    bias: np.ndarray | None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    beta: int = 0  # the weights' shift (pack_q / pack_q8): s = w + w_off - beta
    bytes_times_bytes: bool = False  # the weights are pack_q8's, for conv_q8 (bias folded)
    call: object = None  # the kernel call, checked once (_kernels_fast.KernelCall; prepared_call)


def fast_kernels_take(q) -> bool:
    """The fused fast kernels implement the fixed-point forms, on their shift range, and the
    fp32 form (from the scales)."""
    if q.rounding == Form.ROUNDING_FP32:
        return q.scales is not None
    if not Form(q.rounding).is_fixed_point:
        return False
    return not q.shift.size or (q.shift.min() >= -31 and q.shift.max() <= max_shift(q.rounding))


def prepare_fast_conv(ctx: OpContext, plan, kh: int, kw: int, cout: int, depthwise: bool):
    """FastConv for a constant-weight, ungrouped conv (or multiplier-1 depthwise), its kernel call
    checked for the op's shapes, else None."""
    fast = packed_fast_conv(ctx, plan, kh, kw, cout, depthwise)
    if fast is None:
        return None
    try:
        fast.call = prepared_call(ctx, plan, fast, depthwise)
    except (ValueError, TypeError):  # shapes the fast kernels refuse: the plain kernels run the op
        return None
    return fast


def packed_fast_conv(ctx: OpContext, plan, kh: int, kw: int, cout: int, depthwise: bool):
    """FastConv's packed weights and per-channel vectors (no call yet), or None."""
    w, b_t = constant_data(ctx, 1), ctx.input_tensor(2)
    bias = constant_data(ctx, 2)
    if w is None or (b_t is not None and bias is None):
        return None
    geometry = (kh, kw, *plan.stride, *plan.dilation, plan.window.pad_top, plan.window.pad_left)
    if plan.mode == "float":
        if ctx.profile.float_sum(ctx.op.kind) != ORDERED:
            return None  # the fast float kernels sum in the reference order only
        weights = _kernels_fast.pack_depthwise_f(w) if depthwise else \
            _kernels_fast.pack_f(w.reshape(cout, -1))
        padded_bias = None if bias is None else _kernels_fast.pad_channels(bias, cout, np.float32)
        return FastConv(geometry, weights, padded_bias)
    if plan.mode != "quantized" or not fast_kernels_take(plan.quant):
        return None
    if not _kernels_fast.input_offset_fits(plan.input_offset):
        return None
    q = plan.quant
    multiplier, shift = q.multiplier, q.shift
    if q.rounding == Form.ROUNDING_FP32:  # the epilogue reads each channel's float32 scale bits
        multiplier, shift = q.fp32_scales(cout).view(np.int32), np.zeros(cout, np.int32)
    multiplier = _kernels_fast.pad_channels(multiplier, cout, np.int32)
    shift = _kernels_fast.pad_channels(shift, cout, np.int32)
    in_signed = ctx.input_tensor(0).dtype == np.int8
    if not depthwise and _kernels_fast.native_u8s8() and \
            _kernels_fast.q8_input_fits(plan.input_offset, in_signed):
        packed = _kernels_fast.pack_q8(w.reshape(cout, -1), plan.filter_offset)
        if packed is not None:  # bytes times bytes (vpdpbusd): the offsets' terms in the bias
            weights, beta, sums = packed
            folded = _kernels_fast.fold_q8_bias(bias, sums, w[0].size,
                                                _kernels_fast.q8_alpha(plan.input_offset, in_signed), beta)
            return FastConv(geometry, weights, folded, multiplier, shift, beta, bytes_times_bytes=True)
    if depthwise:
        weights, beta = _kernels_fast.pack_depthwise_q(w, plan.filter_offset), 0
    else:
        weights, beta = _kernels_fast.pack_q(w.reshape(cout, -1), plan.filter_offset) or (None, 0)
    if weights is None:
        return None
    return FastConv(geometry, weights,
                    None if bias is None else _kernels_fast.pad_channels(bias, cout, np.int32),
                    multiplier, shift, beta)


def prepared_call(ctx: OpContext, plan, fast: FastConv, depthwise: bool):
    """The op's _kernels_fast call with every argument checked now (a KernelCall), on example
    arrays of its input and output shapes and dtypes (np.empty: no memory is touched)."""
    x_t = ctx.input_tensor(0)
    x = np.empty(x_t.shape, x_t.dtype)
    out = np.empty(plan.out_shape, np.float32 if plan.mode == "float" else x_t.dtype)
    if plan.mode == "float":
        kernel = _kernels_fast.depthwise_f if depthwise else _kernels_fast.conv_f
        return kernel(x, fast.weights, fast.bias, fast.geometry, *plan.act_range, out, threads_of(ctx),
                      prepared=True)
    q = plan.quant
    if fast.bytes_times_bytes:
        return _kernels_fast.conv_q8(x, fast.weights, fast.bias, fast.multiplier, fast.shift, fast.geometry,
                                     plan.input_offset, fast.beta, q.zero_point, q.qmin, q.qmax,
                                     int(q.rounding), out, threads_of(ctx), prepared=True)
    if depthwise:
        return _kernels_fast.depthwise_q(x, fast.weights, fast.bias, fast.multiplier, fast.shift, fast.geometry,
                                         plan.input_offset, q.zero_point, q.qmin, q.qmax, int(q.rounding), out,
                                         threads_of(ctx), prepared=True)
    return _kernels_fast.conv_q(x, fast.weights, fast.bias, fast.multiplier, fast.shift, fast.geometry,
                                plan.input_offset, fast.beta, q.zero_point, q.qmin, q.qmax, int(q.rounding), out,
                                threads_of(ctx), prepared=True)


def run_fast_conv(plan, x: np.ndarray) -> np.ndarray | None:
    """Run the op prepare_fast_conv packed (plan.fast) by its prepared call; None when a float
    output is NaN (the vector sums do not fix which NaN wins: the plain kernel then computes the
    op)."""
    out = np.empty(plan.out_shape, np.float32 if plan.mode == "float" else x.dtype)
    return None if plan.fast.call.run(contiguous(x), out) else out
