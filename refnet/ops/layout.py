"""Layout ops: SPLIT, SPLIT_V, UNPACK, TRANSPOSE, GATHER, GATHER_ND, DEPTH_TO_SPACE,
SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND, as LiteRT's reference kernels compute them. They cut, reorder or pick elements and never compute on them, so a result
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


def _params_and_indices(ctx: OpContext):
    """GATHER's and GATHER_ND's two inputs, checked."""
    x_t, i_t = ctx.input_tensor(0), ctx.input_tensor(1)
    if len(ctx.op.inputs) != 2 or x_t is None or i_t is None:
        raise ctx.fail("needs 2 inputs (params, indices)")
    _same_dtype(ctx, x_t, [ctx.output_tensor()])
    if i_t.dtype not in INDEX_DTYPES:
        raise ctx.fail(f"indices must be int32 or int64, not {i_t.dtype.name}")
    return x_t, i_t


def _prepare_gather(ctx: OpContext) -> GatherPlan:
    x_t, i_t = _params_and_indices(ctx)
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
    x_t, i_t = _params_and_indices(ctx)
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


# --- DEPTH_TO_SPACE, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND -------------------------------------
# 4-D NHWC. DEPTH_TO_SPACE in TensorFlow's DCR order: out[n, h*b + i, w*b + j, c] =
# in[n, h, w, (i*b + j)*C + c]. SPACE_TO_BATCH_ND pads H and W (with 0, or the output's zero point
# when quantized, as LiteRT) and moves each block offset (i, j) to batch (i*b1 + j)*N + n;
# BATCH_TO_SPACE_ND undoes that and crops.

def _nhwc(ctx: OpContext):
    x_t = ctx.input_tensor(0)
    if x_t is None or len(x_t.shape) != 4:
        raise ctx.unsupported(f"{ctx.op.kind} on a {len(x_t.shape) if x_t else 0}-D tensor (refnet runs 4-D NHWC)")
    _same_dtype(ctx, x_t, [ctx.output_tensor()])
    return x_t


def _prepare_depth_to_space(ctx: OpContext) -> int:
    x_t = _nhwc(ctx)
    b = int(ctx.op.options.get("block_size", 0))
    n, h, w, c = x_t.shape
    if b < 1 or c % (b * b):
        raise ctx.fail(f"block_size {b} must be >= 1 with depth {c} divisible by {b * b}")
    _declared(ctx, [(n, h * b, w * b, c // (b * b))])
    return b


@register("DEPTH_TO_SPACE", prepare=_prepare_depth_to_space)
def _run_depth_to_space(ctx: OpContext, inputs: list) -> list:
    b, x = ctx.params, inputs[0]
    n, h, w, c = x.shape
    y = x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
    return [np.ascontiguousarray(y.reshape(n, h * b, w * b, c // (b * b)))]


def _block_and_pairs(ctx: OpContext, what: str) -> tuple[list[int], list[tuple[int, int]]]:
    block = _constant_ints(ctx, 1, "block_shape")
    pairs = _constant_ints(ctx, 2, what)
    if len(block) != 2 or len(pairs) != 4 or min(block) < 1 or min(pairs) < 0:
        raise ctx.fail(f"block_shape {block} and {what} {pairs} must be 2 positive values and 2x2 non-negative")
    return block, [(pairs[0], pairs[1]), (pairs[2], pairs[3])]


def _prepare_space_to_batch(ctx: OpContext):
    x_t = _nhwc(ctx)
    block, pads = _block_and_pairs(ctx, "paddings")
    n, h, w, c = x_t.shape
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    if hp % block[0] or wp % block[1]:
        raise ctx.fail(f"padded size {hp}x{wp} is not a multiple of the block {block}")
    _declared(ctx, [(n * block[0] * block[1], hp // block[0], wp // block[1], c)])
    y_t = ctx.output_tensor()
    fill = y_t.quantization.scalar()[1] if y_t.dtype in (np.int8, np.uint8) and y_t.quantization else 0
    return block, pads, fill


@register("SPACE_TO_BATCH_ND", prepare=_prepare_space_to_batch)
def _run_space_to_batch(ctx: OpContext, inputs: list) -> list:
    (b0, b1), pads, fill = ctx.params
    x = np.pad(inputs[0], ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill)
    n, hp, wp, c = x.shape
    y = x.reshape(n, hp // b0, b0, wp // b1, b1, c).transpose(2, 4, 0, 1, 3, 5)
    return [np.ascontiguousarray(y.reshape(b0 * b1 * n, hp // b0, wp // b1, c))]


def _prepare_batch_to_space(ctx: OpContext):
    x_t = _nhwc(ctx)
    block, crops = _block_and_pairs(ctx, "crops")
    nb, h, w, c = x_t.shape
    if nb % (block[0] * block[1]):
        raise ctx.fail(f"batch {nb} is not a multiple of the block {block}")
    out_h, out_w = h * block[0] - sum(crops[0]), w * block[1] - sum(crops[1])
    if out_h < 0 or out_w < 0:
        raise ctx.fail(f"crops {crops} exceed the {h * block[0]}x{w * block[1]} result")
    _declared(ctx, [(nb // (block[0] * block[1]), out_h, out_w, c)])
    return block, crops


@register("BATCH_TO_SPACE_ND", prepare=_prepare_batch_to_space)
def _run_batch_to_space(ctx: OpContext, inputs: list) -> list:
    (b0, b1), crops = ctx.params
    x = inputs[0]
    nb, h, w, c = x.shape
    n = nb // (b0 * b1)
    y = x.reshape(b0, b1, n, h, w, c).transpose(2, 3, 0, 4, 1, 5).reshape(n, h * b0, w * b1, c)
    return [np.ascontiguousarray(y[:, crops[0][0]:h * b0 - crops[0][1], crops[1][0]:w * b1 - crops[1][1]])]
