"""CAST, as LiteRT's kernel: static_cast<To>(from) per element (quantization ignored: raw values).

  integers / bool -> float32   the nearest float32 (exact below 2**24), bool as 0 / 1
  float32 -> int32 / int64     truncation toward zero; NaN and values outside int32 are undefined
                               in C: x86-64 gives INT32_MIN, aarch64 saturates (the profile says)
  float32 -> int8 / uint8      as to int32, then the low byte (what the compiled code does in range)
  integers <-> integers        C's conversion: the value, wrapped to the target width
  anything -> bool             x != 0
"""
from __future__ import annotations

import numpy as np

from ..fixedpoint import truncate_to_int32
from . import OpContext, register

TYPES = tuple(np.dtype(t) for t in (np.float32, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_))


def _prepare_cast(ctx: OpContext) -> None:
    x_t = ctx.input_tensor(0)
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or x_t is None:
        raise ctx.fail("CAST takes 1 input and 1 output")
    y_t = ctx.output_tensor()
    for t in (x_t, y_t):
        if t.dtype not in TYPES:
            raise ctx.unsupported(f"CAST of {x_t.dtype.name} to {y_t.dtype.name} (refnet casts between "
                                  f"{', '.join(d.name for d in TYPES)})")
    if tuple(x_t.shape) != tuple(y_t.shape):
        raise ctx.fail(f"output shape {list(y_t.shape)} differs from the input's {list(x_t.shape)}")


@register("CAST", prepare=_prepare_cast)
def _run_cast(ctx: OpContext, inputs: list) -> list:
    x, to = inputs[0], ctx.output_tensor().dtype
    if to == np.bool_:
        return [x != 0]
    if x.dtype == np.float32 and to.kind in "iu":
        whole = truncate_to_int32(x, ctx.profile.saturating_conversion)
        if to == np.int64:  # static_cast<int64_t>: the float's whole part where it fits
            with np.errstate(invalid="ignore"):
                fits = np.abs(x.astype(np.float64)) < 2.0 ** 63
                wide = np.where(fits, np.trunc(np.where(fits, x, 0)).astype(np.int64), np.int64(-(2 ** 63)))
            return [wide]
        return [whole.astype(to)]  # the int32 result's low bytes
    with np.errstate(over="ignore", invalid="ignore"):
        return [np.asarray(x).astype(to)]
