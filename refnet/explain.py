"""Explain one output element: the arithmetic that produced it, step by step.

Answers "what exactly is the math of this layer?" for CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED (float32, int8, uint8): the input and filter values and zero points involved,
the int32 accumulator, the bias, the real multiplier and its quantized form, each rounding step
under the profile, the output offset and the clamp. The final value is checked against what the
interpreter itself produced.
"""
from __future__ import annotations

import numpy as np

from . import fixedpoint as fp
from .errors import InputError
from .interpreter import Interpreter
from .profile import (ROUNDING_DOUBLE, ROUNDING_DOUBLE_TIES_UP, ROUNDING_FLOAT64, ROUNDING_NAMES,
                      ROUNDING_SINGLE)

EXPLAINED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
MAX_TERMS_SHOWN = 12


def _requantize_steps(acc: int, q, channel: int, lines: list[str], effective_scale=None) -> int:
    m = int(q.multiplier[channel if q.multiplier.size > 1 else 0])
    s = int(q.shift[channel if q.shift.size > 1 else 0])
    form = q.rounding
    lines.append(f"requantization: {ROUNDING_NAMES.get(form, form)}")
    if form == ROUNDING_FLOAT64:
        eff = float(effective_scale[channel])
        prod = acc * eff
        r = int(np.trunc(prod) + (np.sign(prod) if abs(prod - np.trunc(prod)) >= 0.5 else 0))
        lines.append(f"  effective scale (double) = s_x * s_w / s_y = {eff!r}")
        lines.append(f"  acc * scale = {acc} * {eff:.10g} = {prod!r}")
        lines.append(f"  round half away from zero -> {r}")
        return r
    real = m * 2.0 ** (s - 31)
    lines.append(f"  quantized multiplier m = {m} (= {m / 2**31:.10f} * 2^31), shift = {s:+d} "
                 f"(real multiplier ~ {real:.10g})")
    if form in (ROUNDING_DOUBLE, ROUNDING_DOUBLE_TIES_UP):
        left, right = max(s, 0), max(-s, 0)
        x = int(fp.wrap_to_int32(np.int64(acc) << left)) if left else acc
        if left:
            lines.append(f"  left shift by {left}: {acc} * 2^{left} = {x}")
        high = int(fp.saturating_rounding_doubling_high_mul(np.int32(x), np.int32(m)))
        lines.append(f"  saturating rounding doubling high multiply: round({x} * {m} / 2^31) = {high}")
        if form == ROUNDING_DOUBLE:
            out = int(fp.rounding_divide_by_pot(np.int32(high), right))
            lines.append(f"  rounding divide by 2^{right} (ties away from zero): {high} / {2**right} -> {out}")
        else:
            out = int(fp.rounding_divide_by_pot_ties_up(np.int32(high), right))
            lines.append(f"  rounding divide by 2^{right} (ties up): {high} / {2**right} -> {out}")
        return out
    if form == ROUNDING_SINGLE:
        out = int(fp.multiply_by_quantized_multiplier_single_rounding(np.int32(acc), np.int32(m), s))
        lines.append(f"  single rounding: ({acc} * {m} + 2^{30 - s}) >> {31 - s} = {out}")
        return out
    out = int(fp.multiply_by_quantized_multiplier(np.int32(acc), np.int32(m), s, form))
    lines.append(f"  -> {out}")
    return out


def _terms(op_kind, plan, x, w, coords):
    """(input index, filter index) pairs that feed one output element, in accumulation order."""
    if op_kind == "FULLY_CONNECTED":
        b, c = coords
        return [((b, k), (c, k)) for k in range(plan.depth)]
    b, y, xx, c = coords
    sh, sw = plan.stride
    dh, dw = plan.dilation
    _, h, wdt, cin = x.shape
    terms = []
    if op_kind == "CONV_2D":
        _, kh, kw, fcin = w.shape
        per_group = w.shape[0] // plan.groups
        g = c // per_group
        for ky in range(kh):
            for kx in range(kw):
                iy, ix = y * sh - plan.window.pad_top + ky * dh, xx * sw - plan.window.pad_left + kx * dw
                if 0 <= iy < h and 0 <= ix < wdt:
                    for ci in range(fcin):
                        terms.append(((b, iy, ix, g * fcin + ci), (c, ky, kx, ci)))
    else:
        _, kh, kw, _ = w.shape
        ic = c // plan.depth_multiplier
        for ky in range(kh):
            for kx in range(kw):
                iy, ix = y * sh - plan.window.pad_top + ky * dh, xx * sw - plan.window.pad_left + kx * dw
                if 0 <= iy < h and 0 <= ix < wdt:
                    terms.append(((b, iy, ix, ic), (0, ky, kx, c)))
    return terms


def explain_element(interp: Interpreter, op_index: int, at: tuple[int, ...]) -> list[str]:
    """Lines describing how output element `at` of op `op_index` was computed (after invoke)."""
    g = interp.graph
    if not 0 <= op_index < len(g.ops):
        raise InputError(f"--op {op_index}: the model has ops 0..{len(g.ops) - 1}")
    op = g.ops[op_index]
    if op.kind not in EXPLAINED:
        raise InputError(f"op {op_index} is {op.kind}; explain covers {', '.join(EXPLAINED)}")
    ctx = interp._contexts[op_index]
    plan = ctx.params
    y_t = g.tensors[op.outputs[0]]
    out = interp.get_tensor(op.outputs[0])
    coords = tuple(at)
    if len(coords) == out.ndim - 1:
        coords = (0,) + coords
    if len(coords) != out.ndim or any(not 0 <= v < s for v, s in zip(coords, out.shape)):
        raise InputError(f"--at {','.join(map(str, at))} is outside output shape {list(out.shape)}")
    x = interp.get_tensor(op.inputs[0])
    w = interp.get_tensor(op.inputs[1])
    bias = interp.get_tensor(op.inputs[2]).reshape(-1) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if op.kind == "FULLY_CONNECTED":
        x = x.reshape(plan.batches, plan.depth)
        coords2 = (int(np.ravel_multi_index(coords[:-1], out.shape[:-1])), coords[-1])
    else:
        coords2 = coords
    c = coords2[-1]
    lines = [f"{op.describe()}: output tensor {y_t.index} '{y_t.name}' {y_t.dtype.name} "
             f"{list(out.shape)}, element {list(coords)}", f"profile: {interp.profile.name}; mode: {plan.mode}"]
    if plan.mode == "hybrid":
        raise InputError("explain does not cover hybrid (dynamic-range) ops yet")
    terms = _terms(op.kind, plan, x, w, coords2)
    lines.append(f"{len(terms)} multiply-accumulate terms (padded taps are skipped)")
    if plan.mode == "float":
        total = np.float32(0)
        for k, (xi, wi) in enumerate(terms):
            prod = np.float32(x[xi]) * np.float32(w[wi])
            total = np.float32(total + prod)
            if k < MAX_TERMS_SHOWN:
                lines.append(f"  x{list(xi)} = {x[xi]!r} * w{list(wi)} = {w[wi]!r} -> sum {total!r}")
        if len(terms) > MAX_TERMS_SHOWN:
            lines.append(f"  ... {len(terms) - MAX_TERMS_SHOWN} more terms; float32 sum = {total!r}")
        b = np.float32(bias[c]) if bias is not None else np.float32(0)
        value = np.float32(total + b)
        lo, hi = plan.act_range
        clamped = np.float32(min(max(value, np.float32(lo)), np.float32(hi)))
        lines.append(f"sum + bias = {total!r} + {b!r} = {value!r}")
        lines.append(f"clamp to [{lo:g}, {hi:g}] -> {clamped!r}")
        final = clamped
    else:
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
        lines.append(f"int32 accumulator: sum = {acc}, + bias {b} = {acc + b}")
        acc += b
        q = plan.quant
        scaled = _requantize_steps(acc, q, c, lines, getattr(plan, "effective_scale", None))
        with_zp = scaled + q.zero_point
        final = min(max(with_zp, q.qmin), q.qmax)
        lines.append(f"+ output zero point {q.zero_point} = {with_zp}; clamp to [{q.qmin}, {q.qmax}] -> {final}")
        s_y = y_t.quantization.scalar()[0]
        lines.append(f"real value = {s_y:g} * ({final} - {q.zero_point}) = {s_y * (final - q.zero_point):.6g}")
    actual = out[coords]
    same = (np.float32(final).view(np.int32) == np.float32(actual).view(np.int32)) if plan.mode == "float" \
        else int(final) == int(actual)
    lines.append(f"interpreter output: {actual!r} ({'matches' if same else 'DOES NOT MATCH'} the steps above)")
    return lines
