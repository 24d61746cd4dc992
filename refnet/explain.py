"""Explain one output element: the arithmetic that produced it, step by step.

Answers "what exactly is the math of this layer?" for the quantized (and float) ops of a
MobileNet: the input values that feed the element, the zero points, multipliers and the
arithmetic form the profile names (refnet/forms.py), the intermediate values, and the result.
Every number comes from the interpreter's own arithmetic: the same plan (ctx.params) and the same
functions the ops run -- refnet/requantize.py's dispatcher, the op modules' NumPy arithmetic,
refnet/fixedpoint.py's primitives -- applied to this one element's inputs, so explain cannot
drift from what it explains. The result is then checked against the interpreter's output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bits, fixedpoint, requantize
from .errors import InputError
from .forms import Form
from .interpreter import Interpreter
from .ops import elementwise, pooling, reduce

MAX_TERMS_SHOWN = 12


@dataclass
class Explanation:
    lines: list[str]
    value: object  # what the steps computed
    actual: object  # the interpreter's element

    @property
    def matches(self) -> bool:
        return bits.same_bits(np.asarray(self.value), np.asarray(self.actual))


def _form_line(form) -> str:
    form = Form(form)
    return f"arithmetic form: {form.name} = {int(form)}, {form.description}"


# --- the conv family --------------------------------------------------------------------------

def _terms(op_kind, plan, x, w, coords):
    """(input index, filter index) pairs that feed one output element, in accumulation order."""
    if op_kind == "FULLY_CONNECTED":
        b, c = coords
        return [((b, k), (c, k)) for k in range(plan.depth)]
    b, y, xx, c = coords
    sh, sw = plan.stride
    dh, dw = plan.dilation
    _, h, wdt, _ = x.shape
    terms = []
    if op_kind == "CONV_2D":
        _, kh, kw, fcin = w.shape
        g = c // (w.shape[0] // plan.groups)
        for ky in range(kh):
            for kx in range(kw):
                iy, ix = y * sh - plan.window.pad_top + ky * dh, xx * sw - plan.window.pad_left + kx * dw
                if 0 <= iy < h and 0 <= ix < wdt:
                    terms += [((b, iy, ix, g * fcin + ci), (c, ky, kx, ci)) for ci in range(fcin)]
    else:
        _, kh, kw, _ = w.shape
        ic = c // plan.depth_multiplier
        for ky in range(kh):
            for kx in range(kw):
                iy, ix = y * sh - plan.window.pad_top + ky * dh, xx * sw - plan.window.pad_left + kx * dw
                if 0 <= iy < h and 0 <= ix < wdt:
                    terms.append(((b, iy, ix, ic), (0, ky, kx, c)))
    return terms


def _requantization_steps(acc: int, q: requantize.QuantizedOutput, lines: list[str]) -> None:
    """The intermediate values of q's form for one accumulator (q: one channel)."""
    form = Form(q.rounding)
    m, s = int(q.multiplier[0]), int(q.shift[0])
    if form.is_fixed_point:
        lines.append(f"  quantized multiplier m = {m} (= {m / 2**31:.10f} * 2^31), shift = {s:+d} "
                     f"(real multiplier ~ {m * 2.0 ** (s - 31):.10g})")
        for what, value in fixedpoint.multiply_by_quantized_multiplier_steps(acc, m, s, form):
            lines.append(f"  {what} -> {value}")
    elif form == Form.ROUNDING_FLOAT64:
        eff = float(q.effective_scale[0])
        lines.append(f"  effective scale (double) = s_x * s_w / s_y = {eff}")
        lines.append(f"  acc * scale = {acc * eff}; round half away from zero -> "
                     f"{int(fixedpoint.round_half_away(np.float64(acc) * eff))}")
    elif form == Form.ROUNDING_FP32:
        x_scale, w_scales, y_scale = q.scales
        scale = requantize.fp32_scale(x_scale, w_scales, y_scale)[0]
        lines.append(f"  float32 scale = float32(float32(s_x * s_w) / s_y) = {float(scale)}")
        lines.append(f"  rint(float32(acc) * scale) = rint({float(np.float32(acc) * scale)}) -> "
                     f"{int(requantize.rint_scaled_fp32(np.int64(acc), scale))}")


def _channels_per_tap(op_kind, plan, w) -> int:
    if op_kind == "FULLY_CONNECTED":
        return plan.depth
    return w.shape[-1] if op_kind == "CONV_2D" else 1


def _float_sum(form, terms, depth: int, x, w, lines) -> np.float32:
    """One output element's float32 sum, tap by tap (`depth` channels each) in the profile's
    FloatSum order (kernels/fixedpoint.pxd add_channel_products, spelled out)."""
    from ._kernels_pointwise import fused_multiply_add

    lane_count, lane_end, fma_from = form.split(depth)
    lines.append(f"float32 sum: {form.describe()}")
    total, shown = np.float32(0), 0
    for start in range(0, len(terms), depth):
        lanes = [np.float32(0)] * max(lane_count, 1)
        for c, (xi, wi) in enumerate(terms[start:start + depth]):
            xv, wv = np.float32(x[xi]), np.float32(w[wi])
            if c < lane_end:
                lanes[c % lane_count] = np.float32(fused_multiply_add(xv, wv, lanes[c % lane_count]))
                step = f"fma into lane {c % lane_count} -> {lanes[c % lane_count]}"
                if c == lane_end - 1:
                    while len(lanes) > 1:
                        lanes = [np.float32(lanes[2 * i] + lanes[2 * i + 1]) for i in range(len(lanes) // 2)]
                    total = np.float32(total + lanes[0])
                    lanes = [np.float32(0)] * lane_count
                    step += f"; lanes reduced pairwise, sum {total}"
            elif c >= fma_from:
                total = np.float32(fused_multiply_add(xv, wv, total))
                step = f"fma -> sum {total}"
            else:
                total = np.float32(total + xv * wv)
                step = f"-> sum {total}"
            if shown < MAX_TERMS_SHOWN:
                lines.append(f"  x{list(xi)} = {xv} * w{list(wi)} = {wv} {step}")
            shown += 1
    if shown > MAX_TERMS_SHOWN:
        lines.append(f"  ... {shown - MAX_TERMS_SHOWN} more terms; float32 sum = {total}")
    return total


def _explain_weighted(ctx, op, x, w, bias, out, coords, lines) -> tuple:
    plan = ctx.params
    if plan.mode == "hybrid":
        raise InputError(f"op {op.index} is a hybrid (float input, int8 weights) {op.kind}; explain "
                         f"covers its float and quantized forms only")
    if op.kind == "FULLY_CONNECTED":
        x = x.reshape(plan.batches, plan.depth)
        coords = (int(np.ravel_multi_index(coords[:-1], out.shape[:-1])), coords[-1])
    c = coords[-1]
    terms = _terms(op.kind, plan, x, w, coords)
    lines.append(f"mode: {plan.mode}; {len(terms)} multiply-accumulate terms (padded taps are skipped)")
    if plan.mode == "float":
        total = _float_sum(ctx.profile.float_sum(op.kind), terms, _channels_per_tap(op.kind, plan, w), x, w,
                           lines)
        b = np.float32(bias[c]) if bias is not None else np.float32(0)
        value = np.float32(total + b)
        lo, hi = plan.act_range
        final = elementwise.clamp_like_cpp(np.asarray([value]), lo, hi)[0]
        lines.append(f"sum + bias = {total} + {b} = {value}; clamp to [{lo:g}, {hi:g}] -> {final}")
        return final
    x_off, w_off = plan.input_offset, plan.filter_offset
    lines.append(f"input zero point {-x_off}, filter zero point {-w_off}: each term is "
                 f"(x - {-x_off}) * (w - {-w_off})")
    acc = 0
    for k, (xi, wi) in enumerate(terms):
        term = (int(x[xi]) + x_off) * (int(w[wi]) + w_off)
        acc += term
        if k < MAX_TERMS_SHOWN:
            lines.append(f"  x{list(xi)} = {int(x[xi])}, w{list(wi)} = {int(w[wi])}: "
                         f"({int(x[xi])} - {-x_off}) * ({int(w[wi])} - {-w_off}) = {term}")
    if len(terms) > MAX_TERMS_SHOWN:
        lines.append(f"  ... {len(terms) - MAX_TERMS_SHOWN} more terms")
    b = int(bias[c]) if bias is not None else 0
    if plan.mode == "quantized16":
        return _explain_16x8_output(ctx, plan.quant.channel(c), acc + b, b, lines)
    acc = int(fixedpoint.wrap_to_int32(acc + b))
    lines.append(f"int32 accumulator: sum + bias {b} = {acc}")
    q = plan.quant.channel(c)
    lines.append(_form_line(q.rounding))
    _requantization_steps(acc, q, lines)
    final = requantize.requantize_to(np.array([[acc]], np.int32), q, out.dtype)[0, 0]
    lines.append(f"+ output zero point {q.zero_point}, clamp to [{q.qmin}, {q.qmax}] -> {int(final)}")
    return final


def _explain_16x8_output(ctx, q, acc: int, b: int, lines) -> int:
    """The int64 accumulator of a 16x8 weighted op and its requantization to int16."""
    lines.append(f"int64 accumulator: sum + bias {b} = {acc}")
    lines.append(_form_line(q.rounding))
    m, s = int(q.multiplier[0]), int(q.shift[0])
    if q.rounding == Form.ROUNDING_INT64_REDUCED:
        reduced = 0x7FFF if m >= 0x7FFF0000 else (m + (1 << 15)) >> 16
        lines.append(f"  quantized multiplier m = {m}, shift = {s:+d}; reduced to 15 bits: {reduced}")
        lines.append(f"  ({acc} * {reduced} + 2^{14 - s}) >> {15 - s}")
    else:
        lines.append(f"  scale {float(q.effective_scale[0])!r}: round(acc * scale), half away from zero")
    final = requantize.requantize_16x8(np.array([[acc]], np.int64), q, ctx.profile.saturating_conversion)[0, 0]
    lines.append(f"clamp to [{q.qmin}, {q.qmax}] -> {int(final)}")
    return final


# --- element-wise, pooling, reduction ---------------------------------------------------------

def _broadcast_index(shape, coords) -> tuple:
    """The element of an input of `shape` that NumPy broadcasting pairs with output `coords`."""
    lead = len(coords) - len(shape)
    return tuple(0 if d == 1 else coords[lead + i] for i, d in enumerate(shape))


def _explain_int16_add_mul(ctx, op, plan, a, b, coords, lines):
    """An int16 ADD / SUB / MUL element: its parameters, then the op's arithmetic (run_int16) on
    the whole inputs (Form.ADD_INT16_INPUT_SHIFT_16 depends on the element's place in the array)."""
    if plan.mode == "int16 pot":
        lines.append(f"int16 power-of-two path: input shifts {plan.input_multipliers}; the finer input is "
                     f"divided by 2^-shift (gemmlowp int16 rounding divide), then a saturating int16 "
                     f"{'subtraction' if op.kind == 'SUB' else 'addition'}")
    else:
        lines.append(_form_line(plan.rounding))
        if op.kind == "MUL":
            lines.append(f"  a * b, then x {plan.output_multiplier[0]} * 2^({plan.output_multiplier[1]} - 31)")
        else:
            (m1, e1), (m2, e2) = plan.input_multipliers
            lines.append(f"  a * 2^{elementwise.ADD_LEFT_SHIFT_INT16} x {m1} * 2^({e1} - 31), b likewise x {m2} * "
                         f"2^({e2} - 31); {'difference' if op.kind == 'SUB' else 'sum'} x "
                         f"{plan.output_multiplier[0]} * 2^({plan.output_multiplier[1]} - 31)")
    final = elementwise.run_int16(plan, a, b, op.kind)[coords]
    lines.append(f"clamp to [{plan.act_range[0]}, {plan.act_range[1]}] -> {int(final)}")
    return final


def _explain_add_mul(ctx, op, a, b, out, coords, lines):
    plan = ctx.params
    ia, ib = _broadcast_index(a.shape, coords), _broadcast_index(b.shape, coords)
    va, vb = a[ia], b[ib]
    lines.append(f"inputs: a{list(ia)} = {va}, b{list(ib)} = {vb}")
    lo, hi = plan.act_range
    if plan.mode in ("int16 general", "int16 pot"):
        return _explain_int16_add_mul(ctx, op, plan, a, b, coords, lines)
    if plan.mode != "quantized":
        with np.errstate(all="ignore"):
            raw = np.add(va, vb) if op.kind == "ADD" else np.multiply(va, vb)
        final = elementwise.clamp_like_cpp(np.asarray([raw], out.dtype), lo, hi)[0]
        lines.append(f"{plan.mode} {op.kind.lower()}: {raw}; clamp to [{lo}, {hi}] -> {final}")
        return final
    zp1, zp2, zpo = plan.zero_points
    lines.append(f"zero points: a {zp1}, b {zp2}, output {zpo}")
    lines.append(_form_line(plan.rounding))
    form = Form(plan.rounding)
    if form == Form.ADD_XNNPACK:
        ma, mb, shift = plan.input_multipliers
        lines.append(f"  multipliers a {ma}, b {mb}, shift {shift}: "
                     f"(2^{shift - 1} + (a - {zp1}) * {ma} + (b - {zp2}) * {mb}) >> {shift}")
    elif form == Form.ROUNDING_FP32:
        lines.append(f"  float32 scale {np.float32(plan.fp32_scale)}: rint(float32((a - {zp1}) * (b - {zp2})) "
                     f"* scale)")
    elif op.kind == "ADD":
        (m1, e1), (m2, e2) = plan.input_multipliers
        floor = False
        if form == Form.ADD_INPUT_SHIFT_FLOOR_8:  # which part of the vector loop the element is in
            flat = int(np.ravel_multi_index(coords, out.shape))
            floor = flat < (out.size // 8) * 8
            lines.append(f"  element {flat} of {out.size}: " + ("in an 8-element block, the inputs' final "
                         "shift floors" if floor else "in the tail, the reference rounding"))
        total = 0
        for name, v, zp, m, e in (("a", va, zp1, m1, e1), ("b", vb, zp2, m2, e2)):
            shifted = (int(v) - zp) << elementwise.ADD_LEFT_SHIFT
            if floor:
                scaled = int(fixedpoint.saturating_rounding_doubling_high_mul(shifted, m)) >> -e
            else:
                scaled = int(fixedpoint.multiply_by_quantized_multiplier(
                    shifted, m, e, Form.ROUNDING_DOUBLE if form == Form.ADD_INPUT_SHIFT_FLOOR_8 else form))
            total += scaled
            lines.append(f"  ({name} - {zp}) * 2^{elementwise.ADD_LEFT_SHIFT} = {shifted}; "
                         f"x {m} * 2^({e} - 31) -> {scaled}")
        mo, eo = plan.output_multiplier
        lines.append(f"  sum of both, then x {mo} * 2^({eo} - 31)")
        if form == Form.ADD_INPUT_SHIFT_FLOOR_8:
            raw = int(fixedpoint.multiply_by_quantized_multiplier(total, mo, eo, Form.ROUNDING_DOUBLE)) + zpo
            final = out.dtype.type(min(max(raw, lo), hi))
            lines.append(f"+ output zero point -> {raw}; clamp to [{lo}, {hi}] -> {int(final)}")
            return final
    else:
        mo, eo = plan.output_multiplier
        product = (int(va) - zp1) * (int(vb) - zp2)
        lines.append(f"  (a - {zp1}) * (b - {zp2}) = {product}; x {mo} * 2^({eo} - 31)")
        for what, value in fixedpoint.multiply_by_quantized_multiplier_steps(product, mo, eo, form):
            lines.append(f"    {what} -> {value}")
    arithmetic = elementwise.quantized_add if op.kind == "ADD" else elementwise.quantized_mul
    raw = int(arithmetic(plan, np.asarray([va]), np.asarray([vb]))[0])
    final = out.dtype.type(min(max(raw, lo), hi))
    lines.append(f"+ output zero point -> {raw}; clamp to [{lo}, {hi}] -> {int(final)}")
    return final


def _explain_average_pool(ctx, op, x, out, coords, lines):
    plan = ctx.params
    cells = pooling.window_inputs(plan, x, coords)
    values = [x[i] for i in cells]
    shown = ", ".join(f"{v}" for v in values[:MAX_TERMS_SHOWN])
    lines.append(f"{len(cells)} inputs under the window (padding excluded): {shown}"
                 f"{' ...' if len(cells) > MAX_TERMS_SHOWN else ''}")
    if x.dtype == np.float32:
        total = np.float32(0)
        for v in values:
            total = np.float32(total + v)
        with np.errstate(all="ignore"):
            average = np.float32(total / np.float32(len(values)))
        final = pooling.clamp_like_std(np.asarray([average]), *plan.clamp)[0]
        lines.append(f"float32 sum {total} / {len(values)} = {average}; clamp -> {final}")
        return final
    total = int(np.sum(np.asarray(values, np.int64)))
    final = pooling.average_quantized(np.int64(total), np.int64(len(values)), x.dtype, plan.clamp)
    lines.append(f"sum {total} over {len(values)} values; (sum +- {len(values)} // 2) / {len(values)} "
                 f"(C division), clamp to {list(plan.clamp)} -> {int(final)}")
    return final


def _explain_mean(ctx, op, x, out, coords, lines):
    plan = ctx.params
    axes = plan.axes
    if axes is None:
        axes = reduce.resolve_axes(ctx, ctx.graph.tensors[op.inputs[1]].data, x.ndim)
    rows, count = reduce.rows_in_input_order(x, axes)
    kept = tuple(c for i, c in enumerate(coords) if not plan.keep_dims or i not in axes)
    row = rows[kept] if kept else rows.reshape(-1)
    shown = ", ".join(f"{v}" for v in row[:MAX_TERMS_SHOWN])
    lines.append(f"{count} inputs over axes {list(axes)}: {shown}{' ...' if count > MAX_TERMS_SHOWN else ''}")
    if x.dtype == np.float32:
        total = np.float32(0)
        for v in row:
            total = np.float32(total + v)
        with np.errstate(all="ignore"):
            total = np.float32(total + np.float32(0.0))
            if "MEAN" in ctx.profile.float_reciprocal:
                final = np.float32(total * np.float32(np.float32(1.0) / np.float32(count)))
                lines.append(f"float32 sum {total} * float32(1 / {count}) -> {final}")
            else:
                final = np.float32(total / np.float32(count))
                lines.append(f"float32 sum {total} / {count} -> {final}")
        return final
    raw_sum = np.int64(row.astype(np.int64).sum())
    lines.append(f"raw sum {int(raw_sum)}; input zero point {plan.input_zero_point}, output zero point "
                 f"{plan.output_zero_point}")
    form = ctx.profile.rounding(op.kind, x.dtype)
    s_x, zp_x = ctx.input_tensor(0).quantization.scalar()
    s_y, zp_y = ctx.output_tensor().quantization.scalar()
    four_d = plan.keep_dims and x.ndim == 4 and sorted(axes) == [1, 2]
    if form in (Form.MEAN_OPTIMIZED_4D, Form.MEAN_OPTIMIZED_4D_SCALAR) and four_d:
        lines.append(_form_line(form))
        params = requantize.mean_optimized_4d_params(count, s_x, zp_x, s_y, zp_y)
        channels = x.shape[-1]
        vector = form == Form.MEAN_OPTIMIZED_4D and coords[-1] < (channels // 16) * 16
        lines.append(f"  multiplier {params[0]}, shift {params[1]}, bias {params[2]}; channel {coords[-1]} of "
                     f"{channels} is in {'a whole 16-channel block (ties up)' if vector else 'the tail (ties away)'}")
        return requantize.mean_optimized_4d_from_sums(np.asarray([raw_sum]), np.asarray([vector]), params,
                                                      x.dtype)[0]
    if form in (Form.MEAN_FP32, Form.MEAN_FP32_FMA):
        lines.append(_form_line(form))
        return requantize.mean_fp32(np.asarray([raw_sum]), count, s_x, zp_x, s_y, zp_y, x.dtype,
                                    fused=form == Form.MEAN_FP32_FMA)[0]
    reference_form = ctx.profile.rounding(op.kind)  # the reference MEAN asks without a dtype
    lines.append(_form_line(reference_form) + f"; multiplier {plan.multiplier} * 2^({plan.shift} - 31) with 1/"
                 f"{count} folded in; the sum less {count} x the input zero point")
    return reduce.mean_quantized_from_sums(ctx, np.asarray([raw_sum]), count, plan, x.dtype)[0]


def _explain_hard_swish(ctx, op, x, out, coords, lines):
    from . import _kernels_hard_swish

    value = x[coords]
    lines.append(f"input {value}")
    one = np.asarray([value])
    result = np.empty(1, x.dtype)
    params = ctx.params
    if params is None:
        reciprocal = "HARD_SWISH" in ctx.profile.float_reciprocal
        _kernels_hard_swish.hard_swish_float(one, result, reciprocal)
        formula = "(x * float32(1 / 6)) * relu6(x + 3)" if reciprocal else "x * relu6(x + 3) / 6"
        lines.append(f"float32 {formula} -> {result[0]}")
        return result[0]
    params = params.params  # the quantized plan: HardSwishParams and the table run looks up
    lines.append(f"int16 fixed point (LiteRT's reference HardSwish): {params}")
    info = np.iinfo(x.dtype)
    _kernels_hard_swish.hard_swish_quantized(
        one, result, params.input_zero_point, params.output_zero_point,
        params.output_multiplier_fixedpoint_int16, params.output_multiplier_exponent,
        params.reluish_multiplier_fixedpoint_int16, params.reluish_multiplier_exponent,
        int(info.min), int(info.max))
    s_x, _ = ctx.input_tensor(0).quantization.scalar()
    real = s_x * (int(value) - params.input_zero_point)
    lines.append(f"  real input {real:.6g}; real hard-swish {real * min(max(real + 3, 0), 6) / 6:.6g} -> "
                 f"{int(result[0])}")
    return result[0]


EXPLAINERS = {
    "CONV_2D": "weighted", "DEPTHWISE_CONV_2D": "weighted", "FULLY_CONNECTED": "weighted",
    "ADD": _explain_add_mul, "MUL": _explain_add_mul, "AVERAGE_POOL_2D": _explain_average_pool,
    "MEAN": _explain_mean, "HARD_SWISH": _explain_hard_swish,
}
EXPLAINED = tuple(EXPLAINERS)


def explain(interp: Interpreter, op_index: int, at: tuple[int, ...]) -> Explanation:
    """How output element `at` of op `op_index` was computed (after invoke)."""
    g = interp.graph
    if not 0 <= op_index < len(g.ops):
        raise InputError(f"--op {op_index}: the model has ops 0..{len(g.ops) - 1}")
    op = g.ops[op_index]
    if op.kind not in EXPLAINERS:
        raise InputError(f"op {op_index} is {op.kind}; explain covers {', '.join(EXPLAINED)}")
    ctx = interp._contexts[op_index]
    y_t = g.tensors[op.outputs[0]]
    out = interp.get_tensor(op.outputs[0])
    coords = tuple(at)
    if len(coords) == out.ndim - 1 and out.ndim == 4:
        coords = (0,) + coords
    if len(coords) != out.ndim:
        raise InputError(f"--at {','.join(map(str, at))}: the output is {out.ndim}-D {list(out.shape)}, "
                         f"so --at takes {out.ndim} coordinates")
    if any(not 0 <= v < s for v, s in zip(coords, out.shape)):
        raise InputError(f"--at {','.join(map(str, at))} is outside output shape {list(out.shape)}")
    lines = [f"{op.describe()}: output tensor {y_t.index} '{y_t.name}' {y_t.dtype.name} "
             f"{list(out.shape)}, element {list(coords)}", f"profile: {interp.profile.name}"]
    tensors = [interp.get_tensor(t) if t >= 0 else None for t in op.inputs]
    explainer = EXPLAINERS[op.kind]
    if explainer == "weighted":
        bias = tensors[2].reshape(-1) if len(tensors) > 2 and tensors[2] is not None else None
        value = _explain_weighted(ctx, op, tensors[0], tensors[1], bias, out, coords, lines)
    elif op.kind in ("ADD", "MUL"):
        value = explainer(ctx, op, tensors[0], tensors[1], out, coords, lines)
    else:
        value = explainer(ctx, op, tensors[0], out, coords, lines)
    actual = out[coords]
    result = Explanation(lines, np.asarray(value, out.dtype)[()], actual)
    if out.dtype.kind in "iu" and y_t.quantization is not None:
        s_y, zp_y = y_t.quantization.scalar()
        lines.append(f"real value = {s_y:g} * ({int(actual)} - {zp_y}) = {s_y * (int(actual) - zp_y):.6g}")
    verdict = "matches the interpreter" if result.matches else "DOES NOT MATCH the interpreter"
    lines.append(f"interpreter output: {actual} ({verdict})")
    return result
