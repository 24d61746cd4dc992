"""SQRT, RSQRT and EXP, as LiteRT's reference kernels compute them.

SQRT, RSQRT (float32): std::sqrt (IEEE, one rounding) and 1.f / std::sqrt(x) (two roundings).
Negative inputs give NaN, as in C.
EXP (exp.cc; it has only a reference kernel, so the optimized path is the same):
  float32  std::exp(float), i.e. libm's expf (activations.libm_expf, as LOGISTIC's).
  int8     a 256-entry table built at prepare by LUTPopulate (activations.lut_populate_8bit) of
           expf(s_in * (q - zp_in)); a value beyond int32 (an exp overflowing to inf included)
           saturates to 127 on ai-edge-litert 2.3.0 (Form.LUT_SATURATING) and on aarch64, and is
           INT32_MIN (so -128) on tflite-runtime 2.14.0 x86-64. LiteRT does not check the quantizations.
  uint8 is not an EXP type in LiteRT; int16 (a 512-step interpolated table) is not done here.
XNNPACK delegates float32 EXP to its own approximation (measured on 50 000 inputs in [-80, 80]:
93 % differ from expf, median 8 ulp, relative error up to 3.8e-6; subnormal results flushed to
0): not modelled, as XNNPACK's other float32 arithmetic is not (README, "Profiles"). Its int8 EXP
is LiteRT's table.
"""
from __future__ import annotations

import numpy as np

from ..forms import Form
from . import OpContext, per_tensor_quantization, register
from .activations import every_byte, libm_expf, lookup, lut_populate_8bit

F32 = np.dtype(np.float32)


def _prepare_unary(ctx: OpContext) -> None:
    x_t = ctx.input_tensor(0)
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or x_t is None:
        raise ctx.fail(f"{ctx.op.kind} takes 1 input and 1 output")
    y_t = ctx.output_tensor()
    if x_t.dtype != F32 or y_t.dtype != F32:
        raise ctx.unsupported(f"{ctx.op.kind} on {x_t.dtype.name} (refnet runs float32)")
    if tuple(y_t.shape) != tuple(x_t.shape):
        raise ctx.fail(f"output shape {list(y_t.shape)} differs from the input's {list(x_t.shape)}")


def _run_unary(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(x, dtype=F32)
        out = root if ctx.op.kind == "SQRT" else np.divide(F32.type(1.0), root, dtype=F32)
    return [np.asarray(out, F32).reshape(x.shape)]


register("SQRT", prepare=_prepare_unary)(_run_unary)
register("RSQRT", prepare=_prepare_unary)(_run_unary)


def _prepare_exp(ctx: OpContext) -> np.ndarray | None:
    x_t = ctx.input_tensor(0)
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or x_t is None:
        raise ctx.fail("EXP takes 1 input and 1 output")
    y_t = ctx.output_tensor()
    if x_t.dtype != y_t.dtype:
        raise ctx.fail(f"input {x_t.dtype.name} and output {y_t.dtype.name} differ")
    if tuple(y_t.shape) != tuple(x_t.shape):
        raise ctx.fail(f"output shape {list(y_t.shape)} differs from the input's {list(x_t.shape)}")
    if x_t.dtype == F32:
        return None
    if x_t.dtype != np.int8:
        raise ctx.unsupported(f"EXP on {x_t.dtype.name} (refnet runs float32 and int8)")
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    # A value beyond int32 (large or inf): the profile says how the build's table converts it
    saturating = ctx.profile.saturating_conversion or ctx.profile.rounding("EXP", x_t.dtype) == Form.LUT_SATURATING
    table = lut_populate_8bit(libm_expf, s_in, zp_in, s_out, zp_out, x_t.dtype, saturating)
    return table[every_byte(x_t.dtype).astype(np.int64) + 128]  # lut8 order (index q - int8 min)


@register("EXP", prepare=_prepare_exp)
def exp(ctx: OpContext, inputs: list) -> list:
    table = ctx.params
    if table is None:
        return [libm_expf(inputs[0])]
    return [lookup(table, inputs[0], ctx.num_threads)]
