"""SQRT and RSQRT on float32, as LiteRT's reference kernels compute them: std::sqrt (IEEE, one
rounding) and 1.f / std::sqrt(x) (two roundings). Negative inputs give NaN, as in C."""
from __future__ import annotations

import numpy as np

from . import OpContext, register

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
