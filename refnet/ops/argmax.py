"""ARG_MAX: float32, int8 and uint8 inputs; int32 or int64 output; axis from an int32/int64
scalar (or 1-element) input, negative axes counted from the end.

LiteRT registers the same ARG_MAX kernel for BUILTIN_REF and the optimized resolver. Without
NaNs every path answers the first index of the maximum (ties, including -0.0 against +0.0, go
to the first index), which is NumPy's argmax. NaN never wins, but how a NaN affects the
answer depends on the loop LiteRT takes (measured on LiteRT 2.3.0, x86-64):
- strided slices (elements after the axis): a scan from index 0 where a non-NaN value
  replaces a NaN or smaller running maximum: the first maximum among the non-NaN values,
  0 if all are NaN;
- contiguous slices (nothing but 1s after the axis, e.g. a classifier's class axis): LiteRT's
  NEON loop, which on x86 runs through the NEON_2_SSE emulation. Four lanes keep their own
  NaN-aware maximum over elements i, i+4, ...; the lanes are then folded pairwise with
  `(a < b) ? b : a`, a fold in which a NaN lane can hide a larger lane. The answer is the
  smallest lane index whose value equals the folded maximum; the elements past the last whole
  group of four are then scanned as above, and a NaN maximum at the end gives 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import OpContext, register

ARGMAX_DTYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8))
OUTPUT_TYPES = {2: np.dtype(np.int32), 4: np.dtype(np.int64)}  # TensorType codes


@dataclass(frozen=True)
class ArgMaxPlan:
    axis: int | None  # None when the axis input is not constant
    out_dtype: np.dtype


def _resolve_axis(ctx: OpContext, values) -> int:
    values = np.asarray(values).reshape(-1)
    rank = len(ctx.input_tensor(0).shape)
    axis = int(values[0])
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise ctx.fail(f"axis {int(values[0])} is outside the input's {rank} dimensions")
    in_shape = tuple(ctx.input_tensor(0).shape)
    if in_shape[axis] == 0:
        raise ctx.fail("cannot take ARG_MAX over an empty axis")
    expected = in_shape[:axis] + in_shape[axis + 1:]
    declared = tuple(ctx.output_tensor().shape)
    if declared != expected:
        raise ctx.fail(f"output shape {list(declared)} should be {list(expected)}")
    return axis


def _prepare_argmax(ctx: OpContext) -> ArgMaxPlan:
    if len(ctx.op.inputs) != 2 or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"needs 2 inputs (data, axis) and 1 output, has {len(ctx.op.inputs)} "
                       f"and {len(ctx.op.outputs)}")
    x_t, axis_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    if x_t is None or axis_t is None:
        raise ctx.fail("the data and axis inputs are required")
    if int(np.prod(axis_t.shape, dtype=np.int64)) != 1:
        raise ctx.fail(f"the axis input must hold one value, has shape {list(axis_t.shape)}")
    if axis_t.dtype not in (np.int32, np.int64):
        raise ctx.fail(f"the axis input must be int32 or int64, not {axis_t.dtype.name}")
    out_type = ctx.op.options.get("output_type", 0)
    if out_type not in OUTPUT_TYPES:
        raise ctx.fail(f"output_type {out_type} is not int32 (2) or int64 (4)")
    out_dtype = OUTPUT_TYPES[out_type]
    if y_t.dtype != out_dtype:
        raise ctx.fail(f"output_type says {out_dtype.name} but the output tensor is {y_t.dtype.name}")
    if x_t.dtype not in ARGMAX_DTYPES:
        raise ctx.unsupported(f"{x_t.dtype.name} ARG_MAX (supported: float32, int8, uint8)")
    if len(x_t.shape) < 1:
        raise ctx.fail("ARG_MAX needs an input of rank >= 1")
    axis = _resolve_axis(ctx, axis_t.data) if axis_t.is_constant else None
    return ArgMaxPlan(axis, out_dtype)


INT32_MAX = 2**31 - 1


def _nan_aware_scan(x: np.ndarray, axis: int) -> np.ndarray:
    """First maximum among the non-NaN values along `axis`; 0 when all are NaN."""
    nan = np.isnan(x)
    best = np.max(np.where(nan, -np.inf, x), axis=axis, keepdims=True)
    # -0.0 == +0.0, so the first zero wins whichever sign the maximum carries, as in LiteRT.
    return np.argmax((x == best) & ~nan, axis=axis)  # all False (all NaN) -> 0


def _fold_lanes(values: np.ndarray, pick_second) -> np.ndarray:
    """NEON_2_SSE's vpmax/vpmin folding of four lanes: pairs (0, 1), (2, 3), then the two."""
    def pair(a, b):
        return np.where(pick_second(a, b), b, a)

    return pair(pair(values[:, 0], values[:, 1]), pair(values[:, 2], values[:, 3]))


def _contiguous_float_argmax(rows: np.ndarray) -> np.ndarray:
    """LiteRT's ArgMaxVector for float rows (outer, size), as its NEON code runs on x86."""
    outer, size = rows.shape
    best = rows[:, 0].copy()
    index = np.zeros(outer, np.int64)
    tail_start = 1
    if size >= 4:
        lanes = rows[:, :4].copy()
        lane_index = np.broadcast_to(np.arange(4, dtype=np.int64), (outer, 4)).copy()
        for i in range(4, size - 3, 4):
            chunk = rows[:, i:i + 4]
            take = ~np.isnan(chunk) & (np.isnan(lanes) | (chunk > lanes))
            lanes = np.where(take, chunk, lanes)
            lane_index = np.where(take, i + np.arange(4), lane_index)
        best = _fold_lanes(lanes, lambda a, b: a < b)  # NaN comparisons are false
        lane_index = np.where(lanes == best[:, None], lane_index, INT32_MAX)
        index = _fold_lanes(lane_index, lambda a, b: a > b)
        tail_start = 4 * (size // 4)
    for i in range(tail_start, size):
        value = rows[:, i]
        take = ~np.isnan(value) & (np.isnan(best) | (value > best))
        best = np.where(take, value, best)
        index = np.where(take, i, index)
    return np.where(np.isnan(best), 0, index)


def first_index_of_max(x: np.ndarray, axis: int) -> np.ndarray:
    """LiteRT's ARG_MAX along `axis` (see the module notes for NaN)."""
    if x.dtype.kind != "f" or not np.isnan(x).any():
        return np.argmax(x, axis=axis)  # NumPy also returns the first of equal maxima
    if int(np.prod(x.shape[axis + 1:], dtype=np.int64)) != 1:
        return _nan_aware_scan(x, axis)
    rows = x.reshape(-1, x.shape[axis])  # contiguous: nothing but 1s after the axis
    return _contiguous_float_argmax(rows).reshape(x.shape[:axis] + x.shape[axis + 1:])


@register("ARG_MAX", prepare=_prepare_argmax)
def arg_max(ctx: OpContext, inputs: list) -> list:
    plan: ArgMaxPlan = ctx.params
    x = inputs[0]
    axis = plan.axis if plan.axis is not None else _resolve_axis(ctx, inputs[1])
    if x.size == 0:
        return [np.zeros(ctx.output_tensor().shape, plan.out_dtype)]
    return [first_index_of_max(x, axis).astype(plan.out_dtype)]
