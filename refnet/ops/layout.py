"""Layout ops: SPLIT, SPLIT_V, UNPACK, TRANSPOSE, GATHER and GATHER_ND, as LiteRT's reference
kernels compute them. They cut, reorder or pick elements and never compute on them, so a result
is a copy of input values (quantized outputs keep the input's quantization; LiteRT copies bytes).

The axis, split sizes, permutation and (for GATHER / GATHER_ND) nothing else must be constants:
the converter writes them so. Indices are read at run time: one outside its dimension is an error
in LiteRT (the op fails) and in refnet (OpExecutionError naming the op and the index).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import OpContext, register
from .shape_ops import DATA_DTYPES

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _constant_ints(ctx: OpContext, i: int, what: str) -> list[int]:
    t = ctx.input_tensor(i)
    if t is None:
        raise ctx.fail(f"input {i} ({what}) is missing")
    if t.dtype not in INDEX_DTYPES:
        raise ctx.fail(f"{what} must be int32 or int64, not {t.dtype.name}")
    if not t.is_constant:
        raise ctx.unsupported(f"a {what} computed at run time (refnet reads it from the model's constants)")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _axis(ctx: OpContext, value: int, rank: int) -> int:
    axis = value + rank if value < 0 else value
    if not 0 <= axis < max(rank, 1):
        raise ctx.fail(f"axis {value} is outside the input's {rank} dimensions")
    return axis


def _same_dtype(ctx: OpContext, x_t, outputs) -> None:
    if x_t.dtype not in DATA_DTYPES:
        raise ctx.unsupported(f"{x_t.dtype.name} tensors")
    for y in outputs:
        if y.dtype != x_t.dtype:
            raise ctx.fail(f"input is {x_t.dtype.name} but output '{y.name}' is {y.dtype.name}")


def _declared(ctx: OpContext, shapes: list[tuple]) -> None:
    for i, shape in enumerate(shapes):
        declared = tuple(ctx.output_tensor(i).shape)
        if declared != tuple(shape):
            raise ctx.fail(f"output {i} shape {list(declared)} should be {list(shape)}")


# --- SPLIT, SPLIT_V, UNPACK -------------------------------------------------------------------

@dataclass(frozen=True)
class SplitPlan:
    data_input: int
    axis: int
    bounds: tuple[int, ...]  # cut points along the axis (len = outputs + 1)
    squeeze: bool = False  # UNPACK drops the axis


def _split_plan(ctx: OpContext, data_input: int, axis_value: int, sizes: list[int], squeeze=False) -> SplitPlan:
    x_t = ctx.input_tensor(data_input)
    if x_t is None:
        raise ctx.fail("the data input is missing")
    outputs = [ctx.output_tensor(i) for i in range(len(ctx.op.outputs))]
    _same_dtype(ctx, x_t, outputs)
    axis = _axis(ctx, axis_value, len(x_t.shape))
    if len(sizes) != len(outputs):
        raise ctx.fail(f"{len(sizes)} parts but {len(outputs)} outputs")
    if sum(sizes) != x_t.shape[axis] or any(s < 0 for s in sizes):
        raise ctx.fail(f"parts {sizes} do not add up to dimension {axis} ({x_t.shape[axis]})")
    shapes = []
    for s in sizes:
        shape = list(x_t.shape)
        if squeeze:
            del shape[axis]
        else:
            shape[axis] = s
        shapes.append(tuple(shape))
    _declared(ctx, shapes)
    return SplitPlan(data_input, axis, tuple(np.cumsum([0] + sizes).tolist()), squeeze)


def _prepare_split(ctx: OpContext) -> SplitPlan:
    if len(ctx.op.inputs) != 2:
        raise ctx.fail(f"needs 2 inputs (axis, data), has {len(ctx.op.inputs)}")
    axis = _constant_ints(ctx, 0, "axis")
    if len(axis) != 1:
        raise ctx.fail(f"the axis must be one value, has {len(axis)}")
    n = int(ctx.op.options.get("num_splits", len(ctx.op.outputs)))
    x_t = ctx.input_tensor(1)
    a = _axis(ctx, axis[0], len(x_t.shape)) if x_t is not None else 0
    if n <= 0 or n != len(ctx.op.outputs) or x_t is None or x_t.shape[a] % n:
        raise ctx.fail(f"num_splits {n} must equal the outputs ({len(ctx.op.outputs)}) and divide the "
                       f"axis ({x_t.shape[a] if x_t is not None else '?'})")
    return _split_plan(ctx, 1, axis[0], [x_t.shape[a] // n] * n)


def _prepare_split_v(ctx: OpContext) -> SplitPlan:
    if len(ctx.op.inputs) != 3:
        raise ctx.fail(f"needs 3 inputs (data, size_splits, axis), has {len(ctx.op.inputs)}")
    x_t = ctx.input_tensor(0)
    sizes = _constant_ints(ctx, 1, "size_splits")
    axis = _constant_ints(ctx, 2, "axis")
    if len(axis) != 1 or x_t is None:
        raise ctx.fail("the axis must be one value and the data input present")
    a = _axis(ctx, axis[0], len(x_t.shape))
    unknown = [i for i, s in enumerate(sizes) if s == -1]
    if len(unknown) > 1:
        raise ctx.fail(f"size_splits {sizes} has more than one -1")
    if unknown:
        sizes[unknown[0]] = x_t.shape[a] - (sum(sizes) + 1)
    return _split_plan(ctx, 0, axis[0], sizes)


def _prepare_unpack(ctx: OpContext) -> SplitPlan:
    x_t = ctx.input_tensor(0)
    if len(ctx.op.inputs) != 1 or x_t is None:
        raise ctx.fail("needs 1 input")
    a = _axis(ctx, int(ctx.op.options.get("axis", 0)), len(x_t.shape))
    num = int(ctx.op.options.get("num", 0)) or x_t.shape[a]
    if num != x_t.shape[a]:
        raise ctx.fail(f"num {num} differs from dimension {a} ({x_t.shape[a]})")
    return _split_plan(ctx, 0, a, [1] * num, squeeze=True)


def _run_split(ctx: OpContext, inputs: list) -> list:
    plan: SplitPlan = ctx.params
    x = inputs[plan.data_input]
    parts = []
    for lo, hi in zip(plan.bounds, plan.bounds[1:]):
        part = np.take(x, np.arange(lo, hi), axis=plan.axis)
        parts.append(np.squeeze(part, axis=plan.axis) if plan.squeeze else part)
    return parts


register("SPLIT", prepare=_prepare_split)(_run_split)
register("SPLIT_V", prepare=_prepare_split_v)(_run_split)
register("UNPACK", prepare=_prepare_unpack)(_run_split)


# --- TRANSPOSE --------------------------------------------------------------------------------

def _prepare_transpose(ctx: OpContext) -> tuple[int, ...]:
    x_t = ctx.input_tensor(0)
    if len(ctx.op.inputs) != 2 or x_t is None:
        raise ctx.fail("needs 2 inputs (data, perm)")
    _same_dtype(ctx, x_t, [ctx.output_tensor()])
    perm = _constant_ints(ctx, 1, "perm")
    rank = len(x_t.shape)
    if rank > 6:
        raise ctx.unsupported(f"a {rank}-D TRANSPOSE (LiteRT's kernel takes up to 6 dimensions)")
    perm = [p + rank if p < 0 else p for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ctx.fail(f"perm {perm} is not a permutation of the {rank} dimensions")
    _declared(ctx, [tuple(x_t.shape[p] for p in perm)])
    return tuple(perm)


@register("TRANSPOSE", prepare=_prepare_transpose)
def _run_transpose(ctx: OpContext, inputs: list) -> list:
    return [np.ascontiguousarray(np.transpose(inputs[0], ctx.params))]


# --- GATHER, GATHER_ND ------------------------------------------------------------------------

@dataclass(frozen=True)
class GatherPlan:
    axis: int
    batch_dims: int


def _prepare_gather(ctx: OpContext) -> GatherPlan:
    x_t, i_t = ctx.input_tensor(0), ctx.input_tensor(1)
    if len(ctx.op.inputs) != 2 or x_t is None or i_t is None:
        raise ctx.fail("needs 2 inputs (params, indices)")
    _same_dtype(ctx, x_t, [ctx.output_tensor()])
    if i_t.dtype not in INDEX_DTYPES:
        raise ctx.fail(f"indices must be int32 or int64, not {i_t.dtype.name}")
    rank = len(x_t.shape)
    axis = _axis(ctx, int(ctx.op.options.get("axis", 0)), rank)
    batch_dims = int(ctx.op.options.get("batch_dims", 0))
    if batch_dims < 0:
        batch_dims += len(i_t.shape)
    if not 0 <= batch_dims <= min(axis, len(i_t.shape)) or x_t.shape[:batch_dims] != i_t.shape[:batch_dims]:
        raise ctx.fail(f"batch_dims {batch_dims} does not fit params {list(x_t.shape)} and indices "
                       f"{list(i_t.shape)} (axis {axis})")
    shape = x_t.shape[:axis] + i_t.shape[batch_dims:] + x_t.shape[axis + 1:]
    _declared(ctx, [shape])
    return GatherPlan(axis, batch_dims)


def _check_indices(ctx: OpContext, indices: np.ndarray, size: int, what: str) -> None:
    bad = (indices < 0) | (indices >= size)
    if bad.any():
        raise ctx.arithmetic_error(f"{what} {int(indices[bad][0])} is outside [0, {size}) (LiteRT fails here too)")


@register("GATHER", prepare=_prepare_gather)
def _run_gather(ctx: OpContext, inputs: list) -> list:
    plan: GatherPlan = ctx.params
    x, idx = inputs[0], np.asarray(inputs[1], np.int64)
    _check_indices(ctx, idx, x.shape[plan.axis], "index")
    if plan.batch_dims == 0:
        return [np.ascontiguousarray(np.take(x, idx, axis=plan.axis))]
    b = plan.batch_dims
    batch = int(np.prod(x.shape[:b], dtype=np.int64))
    xs = x.reshape((batch,) + x.shape[b:])
    ids = idx.reshape((batch,) + idx.shape[b:])
    parts = [np.take(xs[k], ids[k], axis=plan.axis - b) for k in range(batch)]
    out_shape = ctx.output_tensor().shape
    return [np.ascontiguousarray(np.stack(parts).reshape(out_shape))]


def _prepare_gather_nd(ctx: OpContext) -> int:
    x_t, i_t = ctx.input_tensor(0), ctx.input_tensor(1)
    if len(ctx.op.inputs) != 2 or x_t is None or i_t is None:
        raise ctx.fail("needs 2 inputs (params, indices)")
    _same_dtype(ctx, x_t, [ctx.output_tensor()])
    if i_t.dtype not in INDEX_DTYPES:
        raise ctx.fail(f"indices must be int32 or int64, not {i_t.dtype.name}")
    if not i_t.shape:
        raise ctx.fail("indices must have at least one dimension")
    depth = i_t.shape[-1]
    if depth > len(x_t.shape):
        raise ctx.fail(f"index depth {depth} exceeds the params' {len(x_t.shape)} dimensions")
    _declared(ctx, [i_t.shape[:-1] + x_t.shape[depth:]])
    return depth


@register("GATHER_ND", prepare=_prepare_gather_nd)
def _run_gather_nd(ctx: OpContext, inputs: list) -> list:
    depth: int = ctx.params
    x, idx = inputs[0], np.asarray(inputs[1], np.int64)
    flat = idx.reshape(-1, depth)
    for d in range(depth):
        _check_indices(ctx, flat[:, d], x.shape[d], f"index (dimension {d})")
    picked = x[tuple(flat[:, d] for d in range(depth))] if depth else np.broadcast_to(x, (flat.shape[0],) + x.shape)
    return [np.ascontiguousarray(picked.reshape(ctx.output_tensor().shape))]
