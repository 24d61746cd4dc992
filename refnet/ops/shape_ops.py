"""Shape and data-movement ops: RESHAPE, SQUEEZE, SHAPE, STRIDED_SLICE, PACK, PAD,
CONCATENATION and TILE, as LiteRT's reference kernels compute them.

These ops move values without arithmetic, with two exceptions:
- PAD fills with 0 (float32, unquantized integers) or with the output's zero point (uint8,
  and int8/int16 inputs that carry quantization).
- uint8 CONCATENATION requantizes every input whose (scale, zero point) differs from the
  output's, in float32: v = round_half_away(q * s + b) + output_zero_point, clamped to
  [0, 255], where s = input_scale * (1 / output_scale) and b = -input_zero_point * s (every
  step rounded to float32). int8 CONCATENATION requires equal quantization (LiteRT rejects
  the model otherwise), and so does PACK for every dtype.

Every output shape is computed as LiteRT's Prepare computes it and must equal the shape the
model declares; a mismatch is an invalid model. Where LiteRT's own result would be undefined
(reads or writes outside a tensor) refnet raises a typed error instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _kernels_pointwise
from ..fixedpoint import truncate_to_int32, wrap_to_int32
from . import OpContext, register, round_half_away

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# Dtypes refnet moves through these ops (LiteRT copies bytes; these are the ones MobileNets use).
DATA_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.int8, np.uint8, np.int16, np.int32,
                                          np.int64, np.bool_))
# TensorType codes of the SHAPE and ARG_MAX output-type options.
INDEX_TYPES = {2: np.dtype(np.int32), 4: np.dtype(np.int64)}


def _check_arity(ctx: OpContext, inputs: tuple[int, ...] | int, outputs: int = 1) -> None:
    allowed = (inputs,) if isinstance(inputs, int) else inputs
    n_in, n_out = len(ctx.op.inputs), len(ctx.op.outputs)
    if n_in not in allowed or n_out != outputs:
        raise ctx.fail(f"needs {' or '.join(map(str, allowed))} inputs and {outputs} output, "
                       f"has {n_in} and {n_out}")
    if n_in and ctx.input_tensor(0) is None:
        raise ctx.fail("input 0 is missing")


def _check_data_dtype(ctx: OpContext, allowed=DATA_DTYPES) -> np.dtype:
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    if x_t.dtype not in allowed:
        raise ctx.unsupported(f"{x_t.dtype.name} tensors (supported: "
                              f"{', '.join(d.name for d in allowed)})")
    if y_t.dtype != x_t.dtype:
        raise ctx.fail(f"input is {x_t.dtype.name} but output is {y_t.dtype.name}")
    return x_t.dtype


def _check_output_shape(ctx: OpContext, expected) -> tuple[int, ...]:
    expected = tuple(int(d) for d in expected)
    declared = tuple(ctx.output_tensor().shape)
    if declared != expected:
        raise ctx.fail(f"output shape {list(declared)} should be {list(expected)}")
    return expected


def _quantization_pair(tensor) -> tuple[float, int]:
    """(scale, zero point) as LiteRT's TfLiteQuantizationParams holds them (0, 0 when absent)."""
    if tensor.quantization is None:
        return 0.0, 0
    return tensor.quantization.scalar()


def _int_vector(ctx: OpContext, tensor, values, name: str, dtypes=(np.int32,)) -> list[int]:
    if tensor.dtype not in tuple(np.dtype(d) for d in dtypes):
        raise ctx.fail(f"{name} must be {' or '.join(np.dtype(d).name for d in dtypes)}, "
                       f"not {tensor.dtype.name}")
    return [int(v) for v in np.asarray(values).reshape(-1).tolist()]


# --- RESHAPE ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReshapePlan:
    from_tensor: bool  # the new shape is the second input's value
    out_shape: tuple[int, ...] | None  # None: computed at run time from the shape input


def _resolve_reshape(ctx: OpContext, in_shape: tuple[int, ...], requested: list[int]) -> tuple[int, ...]:
    """TFLite's ResolveOutputShape: one -1 is inferred; zero-sized dimensions are allowed."""
    n_in = int(np.prod(in_shape, dtype=np.int64)) if in_shape else 1
    nonzero_in = int(np.prod([d for d in in_shape if d != 0], dtype=np.int64))
    stretch = None
    nonzero_out, n_out = 1, 1
    shape = list(requested)
    for i, d in enumerate(shape):
        if d == -1:
            if stretch is not None:
                raise ctx.fail(f"new shape {requested} has more than one -1")
            stretch = i
            continue
        if d < 0:
            raise ctx.fail(f"new shape {requested} has a negative dimension")
        nonzero_out *= d if d != 0 else 1
        n_out *= d
    if stretch is not None:
        if n_in == 0 and n_out != 0:
            shape[stretch] = 0
        else:
            shape[stretch] = nonzero_in // nonzero_out  # C integer division, checked below
        n_out *= shape[stretch]
    if n_in != n_out or any(d > INT32_MAX for d in shape):
        raise ctx.fail(f"cannot reshape {list(in_shape)} ({n_in} elements) to {requested}")
    return tuple(shape)


def _reshape_request(ctx: OpContext, shape_value) -> list[int]:
    return _int_vector(ctx, ctx.input_tensor(1), shape_value, "the shape tensor")


def _prepare_reshape(ctx: OpContext) -> ReshapePlan:
    _check_arity(ctx, (1, 2))
    _check_data_dtype(ctx)
    x_t = ctx.input_tensor(0)
    shape_t = ctx.input_tensor(1)
    # LiteRT reads the shape input only when it is an int32 vector; otherwise the option.
    from_tensor = shape_t is not None and len(shape_t.shape) == 1 and shape_t.dtype == np.int32
    if from_tensor and not shape_t.is_constant:
        return ReshapePlan(True, None)
    if from_tensor:
        requested = _reshape_request(ctx, shape_t.data)
    else:
        requested = [int(d) for d in ctx.op.options.get("new_shape", [])]
        if requested == [0]:  # legacy converters wrote [0] for a scalar
            requested = []
    out_shape = _check_output_shape(ctx, _resolve_reshape(ctx, tuple(x_t.shape), requested))
    return ReshapePlan(from_tensor, out_shape)


@register("RESHAPE", prepare=_prepare_reshape)
def reshape(ctx: OpContext, inputs: list) -> list:
    plan: ReshapePlan = ctx.params
    x = inputs[0]
    out_shape = plan.out_shape
    if out_shape is None:
        out_shape = _check_output_shape(ctx, _resolve_reshape(ctx, x.shape, _reshape_request(ctx, inputs[1])))
    return [np.array(x, copy=True).reshape(out_shape)]


# --- SQUEEZE ----------------------------------------------------------------------------------


def _prepare_squeeze(ctx: OpContext) -> tuple[int, ...]:
    _check_arity(ctx, 1)
    _check_data_dtype(ctx)
    in_shape = tuple(ctx.input_tensor(0).shape)
    rank = len(in_shape)
    if rank > 8:
        raise ctx.fail(f"SQUEEZE supports up to 8 dimensions, the input has {rank}")
    dims = [int(d) for d in ctx.op.options.get("squeeze_dims", [])]
    if not dims:
        squeeze = {i for i, d in enumerate(in_shape) if d == 1}
    else:
        squeeze = set()
        for d in dims:
            current = d + rank if d < 0 else d
            if not 0 <= current < rank or in_shape[current] != 1:
                raise ctx.fail(f"cannot squeeze dimension {d} of shape {list(in_shape)}")
            squeeze.add(current)
    return _check_output_shape(ctx, [d for i, d in enumerate(in_shape) if i not in squeeze])


@register("SQUEEZE", prepare=_prepare_squeeze)
def squeeze(ctx: OpContext, inputs: list) -> list:
    return [np.array(inputs[0], copy=True).reshape(ctx.params)]


# --- SHAPE ------------------------------------------------------------------------------------


def _prepare_shape(ctx: OpContext) -> np.ndarray:
    _check_arity(ctx, 1)
    out_type = ctx.op.options.get("out_type", 0)
    if out_type not in INDEX_TYPES:
        raise ctx.fail(f"out_type {out_type} is not int32 (2) or int64 (4)")
    dtype = INDEX_TYPES[out_type]
    y_t = ctx.output_tensor()
    if y_t.dtype != dtype:
        raise ctx.fail(f"out_type says {dtype.name} but the output tensor is {y_t.dtype.name}")
    in_shape = ctx.input_tensor(0).shape
    _check_output_shape(ctx, (len(in_shape),))
    return np.asarray(in_shape, dtype=dtype).reshape(len(in_shape))


@register("SHAPE", prepare=_prepare_shape)
def shape(ctx: OpContext, inputs: list) -> list:
    return [ctx.params.copy()]


# --- STRIDED_SLICE ----------------------------------------------------------------------------


def _bit(mask: int, i: int) -> bool:
    return bool((mask >> i) & 1)


def _clamp(v: int, lo: int, hi: int) -> int:
    return hi if hi < v else (lo if v < lo else v)


@dataclass(frozen=True)
class SliceSpec:
    """One strided slice over the "effective" input (new axes inserted as size-1 dims)."""

    effective_shape: tuple[int, ...]
    starts: tuple[int, ...]
    stops: tuple[int, ...]
    strides: tuple[int, ...]
    begin_mask: int
    end_mask: int
    shrink_mask: int
    offset: bool


def _slice_spec(ctx: OpContext, in_shape, begin, end, strides, use_indices: bool) -> SliceSpec:
    """Expand ellipsis and new axes into per-axis (start, stop, stride) and masks, the way
    LiteRT's BuildStridedSliceParams does (masks are bit sets over the begin/end entries)."""
    o = ctx.op.options
    begin_mask, end_mask = int(o.get("begin_mask", 0)), int(o.get("end_mask", 0))
    ellipsis_mask, new_axis_mask = int(o.get("ellipsis_mask", 0)), int(o.get("new_axis_mask", 0))
    shrink_mask, offset = int(o.get("shrink_axis_mask", 0)), bool(o.get("offset", False))
    count, rank = len(begin), len(in_shape)
    added = sum(1 for i in range(count) if not _bit(ellipsis_mask, i) and _bit(new_axis_mask, i))
    dims = rank + added
    if dims > 31:
        raise ctx.unsupported(f"{dims} effective dimensions (at most 31: masks are 32-bit)")

    # Which effective axes the ellipsis covers, and which are new axes.
    eff_ellipsis, eff_new_axis = 0, 0
    ellipsis_start, expanded = dims, 0
    i = 0
    while i < dims:
        if _bit(ellipsis_mask, i):
            ellipsis_start = i
            ellipsis_end = max(i + 1, min(i + 1 + added + rank - count, dims))
            expanded = ellipsis_end - ellipsis_start - 1
            while i < ellipsis_end:
                eff_ellipsis |= 1 << i
                i += 1
            continue
        if _bit(new_axis_mask, i - expanded):
            eff_new_axis |= 1 << i
        i += 1

    starts, stops, steps, shape = [0] * dims, [0] * dims, [1] * dims, [0] * dims
    b_mask = e_mask = s_mask = 0
    added_ellipsis = added_axes = 0

    def input_dim(i: int) -> int:
        j = i - added_axes
        if not 0 <= j < rank:
            raise ctx.fail("begin/end/masks do not fit the input's rank")
        return int(in_shape[j])

    for i in range(dims):
        if _bit(eff_ellipsis, i):
            added_ellipsis = max(0, i - ellipsis_start)
            b_mask |= 1 << i
            e_mask |= 1 << i
            shape[i] = input_dim(i)
        elif _bit(eff_new_axis, i):
            stops[i] = 1
            shape[i] = 1
            added_axes += 1
        elif i >= count + expanded:  # dimensions past the given entries are taken whole
            b_mask |= 1 << i
            e_mask |= 1 << i
            shape[i] = input_dim(i)
        else:
            j = i - added_ellipsis
            if not 0 <= j < count:
                raise ctx.fail("begin/end/masks do not fit the input's rank")
            if use_indices:
                starts[i], stops[i] = begin[j], end[j]
            steps[i] = strides[j]
            b_mask |= int(_bit(begin_mask, j)) << i
            e_mask |= int(_bit(end_mask, j)) << i
            s_mask |= int(_bit(shrink_mask, j)) << i
            shape[i] = input_dim(i)
    return SliceSpec(tuple(shape), tuple(starts), tuple(stops), tuple(steps), b_mask, e_mask,
                     s_mask, offset)


def _start_for_axis(spec: SliceSpec, axis: int) -> int:
    size, start, stride = spec.effective_shape[axis], spec.starts[axis], spec.strides[axis]
    if start < 0:
        start += size
    start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
    if _bit(spec.begin_mask, axis):
        start = 0 if stride > 0 else size - 1
    return start


def _stop_for_axis(ctx: OpContext, spec: SliceSpec, axis: int, start: int) -> int:
    size = spec.effective_shape[axis]
    if _bit(spec.shrink_mask, axis):
        return start if start >= size else start + 1
    stop, stride = spec.stops[axis], spec.strides[axis]
    if spec.offset:
        stop += start
        if not INT32_MIN <= stop <= INT32_MAX:
            raise ctx.arithmetic_error(f"begin + size overflows int32 on axis {axis}")
    if stop < 0:
        stop += size
    stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
    if _bit(spec.end_mask, axis):
        stop = size if stride > 0 else -1
    return stop


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _slice_output_shape(ctx: OpContext, in_shape, begin, end, strides) -> tuple[int, ...]:
    """LiteRT's ResizeOutputTensor for STRIDED_SLICE (with `offset`, end holds sizes)."""
    offset = bool(ctx.op.options.get("offset", False))
    spec = _slice_spec(ctx, in_shape, begin, end, strides, use_indices=not offset)
    out = []
    for axis in range(len(spec.effective_shape)):
        stride = spec.strides[axis]
        if stride == 0:
            raise ctx.fail(f"stride 0 on axis {axis}")
        if _bit(spec.shrink_mask, axis):
            continue
        if offset:
            if axis >= len(end):  # LiteRT would read past the end tensor
                raise ctx.fail("with offset=True, begin/end must cover every effective axis")
            dim = end[axis]
        else:
            start = _start_for_axis(spec, axis)
            dim = _stop_for_axis(ctx, spec, axis, start) - start
        if stride == INT32_MIN:
            raise ctx.fail("stride INT32_MIN is not supported")
        if (dim < 0) != (stride < 0):
            dim = 0
        elif stride < 0:
            dim = _c_div(dim + 1, stride) + 1
        else:
            dim = 0 if dim == 0 else _c_div(dim - 1, stride) + 1
        if not 0 <= dim <= INT32_MAX:
            raise ctx.fail(f"output dimension {dim} on axis {axis} is out of range")
        out.append(dim)
    return tuple(out)


def _slice_indices(ctx: OpContext, in_shape, begin, end, strides) -> tuple[SliceSpec, list[range]]:
    spec = _slice_spec(ctx, in_shape, begin, end, strides, use_indices=True)
    ranges = []
    for axis in range(len(spec.effective_shape)):
        start = _start_for_axis(spec, axis)
        stop = _stop_for_axis(ctx, spec, axis, start)
        ranges.append(range(start, stop, spec.strides[axis]))  # same loop as the reference
    return spec, ranges


@dataclass(frozen=True)
class SlicePlan:
    effective_shape: tuple[int, ...]  # the input with new axes inserted
    ranges: tuple[range, ...]  # the indices the reference loops over, per effective axis
    out_shape: tuple[int, ...]


def _slice_vectors(ctx: OpContext, values) -> tuple[list[int], list[int], list[int]]:
    names = ("begin", "end", "strides")
    vectors = [_int_vector(ctx, ctx.input_tensor(i + 1), v, names[i]) for i, v in enumerate(values)]
    if len(vectors[2]) != len(vectors[0]):
        raise ctx.fail(f"strides has {len(vectors[2])} entries, begin has {len(vectors[0])}")
    return vectors[0], vectors[1], vectors[2]


def _plan_slice(ctx: OpContext, in_shape, values) -> SlicePlan:
    vectors = _slice_vectors(ctx, values)
    out_shape = _check_output_shape(ctx, _slice_output_shape(ctx, in_shape, *vectors))
    spec, ranges = _slice_indices(ctx, in_shape, *vectors)
    selected = int(np.prod([len(r) for r in ranges], dtype=np.int64))
    expected = int(np.prod(out_shape, dtype=np.int64))
    if selected != expected:
        # The reference writes `selected` elements sequentially into an output sized by Prepare:
        # past its end, or leaving some of it unwritten (e.g. a shrunk axis whose index is out
        # of range). Neither has a defined value.
        raise ctx.fail(f"the slice selects {selected} elements but its output shape "
                       f"{list(out_shape)} holds {expected} (LiteRT's result is undefined here)")
    return SlicePlan(spec.effective_shape, tuple(ranges), out_shape)


def _prepare_strided_slice(ctx: OpContext) -> SlicePlan | None:
    _check_arity(ctx, 4)
    _check_data_dtype(ctx)
    tensors = [ctx.input_tensor(i) for i in (1, 2, 3)]
    if any(t is None for t in tensors):
        raise ctx.fail("begin, end and strides inputs are required")
    for name, t in zip(("begin", "end", "strides"), tensors):
        if len(t.shape) != 1:
            raise ctx.fail(f"{name} must be a vector, has shape {list(t.shape)}")
        if t.dtype != np.int32:
            raise ctx.fail(f"{name} must be int32, not {t.dtype.name}")
    if tensors[0].shape[0] != tensors[1].shape[0]:
        raise ctx.fail(f"begin has {tensors[0].shape[0]} entries, end has {tensors[1].shape[0]}")
    if tensors[0].shape[0] > 31:
        raise ctx.fail("STRIDED_SLICE supports at most 31 indices")
    if not all(t.is_constant for t in tensors):
        return None  # planned at run time from the index values
    return _plan_slice(ctx, tuple(ctx.input_tensor(0).shape), [t.data for t in tensors])


@register("STRIDED_SLICE", prepare=_prepare_strided_slice)
def strided_slice(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    plan: SlicePlan = ctx.params or _plan_slice(ctx, x.shape, inputs[1:4])
    if not plan.ranges:  # a 0-D input: the reference copies its one element
        return [np.array(x, copy=True).reshape(plan.out_shape)]
    effective = x.reshape(plan.effective_shape)
    picked = effective[np.ix_(*[np.asarray(r, dtype=np.int64) for r in plan.ranges])]
    return [np.ascontiguousarray(picked).reshape(plan.out_shape)]


# --- PACK -------------------------------------------------------------------------------------

PACK_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.int8, np.uint8, np.int16, np.int32, np.int64))


def _prepare_pack(ctx: OpContext) -> int:
    values_count = int(ctx.op.options.get("values_count", 0))
    if values_count < 1 or len(ctx.op.inputs) != values_count or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"values_count {values_count} but {len(ctx.op.inputs)} inputs and "
                       f"{len(ctx.op.outputs)} outputs")
    tensors = [ctx.input_tensor(i) for i in range(values_count)]
    if any(t is None for t in tensors):
        raise ctx.fail("an input is missing")
    dtype = _check_data_dtype(ctx, PACK_DTYPES)
    first = tensors[0]
    rank = len(first.shape) + 1
    axis = int(ctx.op.options.get("axis", 0))
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise ctx.fail(f"axis {ctx.op.options.get('axis', 0)} is outside the output's {rank} dimensions")
    out_q = _quantization_pair(ctx.output_tensor())
    for i, t in enumerate(tensors):
        if t.shape != first.shape or t.dtype != dtype:
            raise ctx.fail(f"input {i} is {t.dtype.name}{list(t.shape)}, input 0 is "
                           f"{dtype.name}{list(first.shape)}")
        if _quantization_pair(t) != out_q:
            raise ctx.fail(f"input {i} has quantization {_quantization_pair(t)} but the output has "
                           f"{out_q}; PACK does not requantize")
    out_shape = list(first.shape)
    out_shape.insert(axis, values_count)
    _check_output_shape(ctx, out_shape)
    return axis


@register("PACK", prepare=_prepare_pack)
def pack(ctx: OpContext, inputs: list) -> list:
    return [np.stack(inputs, axis=ctx.params)]


# --- PAD --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PadPlan:
    paddings: tuple | None  # ((before, after), ...) when constant
    value: object  # the fill value, already of the data's dtype


def _pad_amounts(ctx: OpContext, values) -> tuple[tuple[int, int], ...]:
    x_t, p_t = ctx.input_tensor(0), ctx.input_tensor(1)
    rank = len(x_t.shape)
    flat = _int_vector(ctx, p_t, values, "paddings", dtypes=(np.int32, np.int64))
    pairs = tuple((flat[2 * i], flat[2 * i + 1]) for i in range(rank))
    for before, after in pairs:
        if not (INT32_MIN <= before <= INT32_MAX and INT32_MIN <= after <= INT32_MAX):
            raise ctx.fail("paddings must fit in int32")
        if before < 0 or after < 0:
            raise ctx.fail(f"paddings {[list(p) for p in pairs]} must be >= 0")
    return pairs


def _pad_output_shape(ctx: OpContext, pairs) -> tuple[int, ...]:
    in_shape = ctx.input_tensor(0).shape
    out = tuple(d + b + a for d, (b, a) in zip(in_shape, pairs))
    if any(d > INT32_MAX for d in out):
        raise ctx.fail("padded dimension overflows int32")
    return _check_output_shape(ctx, out)


def _pad_value(x_t, y_t):
    """What LiteRT pads with: the output's zero point for quantized integers, else zero."""
    zero_point = _quantization_pair(y_t)[1]
    if x_t.dtype == np.uint8:
        return np.uint8(zero_point)
    if x_t.dtype in (np.int8, np.int16) and x_t.quantization is not None:
        return x_t.dtype.type(zero_point)
    return x_t.dtype.type(0)


def _prepare_pad(ctx: OpContext) -> PadPlan:
    if len(ctx.op.inputs) == 3 and ctx.op.inputs[2] >= 0:
        raise ctx.unsupported("PAD with a constant_values input (PADV2 form)")
    _check_arity(ctx, (2, 3))
    x_t, p_t = ctx.input_tensor(0), ctx.input_tensor(1)
    if p_t is None:
        raise ctx.fail("the paddings input is required")
    _check_data_dtype(ctx)
    if p_t.dtype not in (np.int32, np.int64):
        raise ctx.unsupported(f"{p_t.dtype.name} paddings (supported: int32, int64)")
    rank = len(x_t.shape)
    if rank > 5:
        raise ctx.fail(f"PAD supports up to 5 dimensions, the input has {rank}")
    if len(p_t.shape) != 2 or p_t.shape[1] != 2 or p_t.shape[0] != rank:
        raise ctx.fail(f"paddings shape {list(p_t.shape)} should be [{rank}, 2]")
    value = _pad_value(x_t, ctx.output_tensor())
    if not p_t.is_constant:
        return PadPlan(None, value)
    pairs = _pad_amounts(ctx, p_t.data)
    _pad_output_shape(ctx, pairs)
    return PadPlan(pairs, value)


@register("PAD", prepare=_prepare_pad)
def pad(ctx: OpContext, inputs: list) -> list:
    plan: PadPlan = ctx.params
    pairs = plan.paddings
    if pairs is None:
        pairs = _pad_amounts(ctx, inputs[1])
        _pad_output_shape(ctx, pairs)
    x = inputs[0]
    if x.ndim == 0:
        return [np.array(x, copy=True)]
    return [np.pad(x, pairs, mode="constant", constant_values=plan.value)]


# --- CONCATENATION ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConcatPlan:
    axis: int
    scalars: bool  # constant scalars packed into a vector
    requantize: tuple = ()  # uint8: per input, None (copy) or (scale, bias, output_zero_point)


def _uint8_requantize_params(in_q: tuple[float, int], out_q: tuple[float, int]):
    """None when the input is copied as is; else float32 (scale, bias) as the reference builds."""
    if in_q[1] == out_q[1] and np.float32(in_q[0]) == np.float32(out_q[0]):
        return None
    f32 = np.float32
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inverse_output_scale = f32(1.0) / f32(out_q[0])
        scale = f32(in_q[0]) * inverse_output_scale
        bias = f32(-in_q[1]) * scale
    return scale, bias, int(out_q[1])


def _prepare_concatenation(ctx: OpContext) -> ConcatPlan:
    if len(ctx.op.inputs) < 1 or len(ctx.op.outputs) != 1:
        raise ctx.fail("needs at least 1 input and exactly 1 output")
    tensors = [ctx.input_tensor(i) for i in range(len(ctx.op.inputs))]
    if any(t is None for t in tensors):
        raise ctx.fail("an input is missing")
    dtype = _check_data_dtype(ctx)
    first = tensors[0]
    rank = len(first.shape)
    axis = int(ctx.op.options.get("axis", 0))
    if axis < 0:
        axis += rank
    if not (0 <= axis < rank or (rank == 0 and axis == 0)):
        raise ctx.fail(f"axis {ctx.op.options.get('axis', 0)} is outside the inputs' {rank} dimensions")
    act = ctx.op.options.get("fused_activation_function", "NONE")
    if act != "NONE":
        raise ctx.unsupported(f"CONCATENATION with fused activation {act} (LiteRT rejects it too)")
    if rank == 0:  # LiteRT only packs scalars that are all constant
        if not all(t.is_constant and len(t.shape) == 0 and t.dtype == dtype for t in tensors):
            raise ctx.fail("scalar inputs can only be concatenated when all are constants")
        _check_output_shape(ctx, (len(tensors),))
        return ConcatPlan(0, True)
    out_shape = list(first.shape)
    out_shape[axis] = 0
    for i, t in enumerate(tensors):
        if len(t.shape) != rank or t.dtype != dtype:
            raise ctx.fail(f"input {i} is {t.dtype.name}{list(t.shape)}, input 0 is "
                           f"{dtype.name}{list(first.shape)}")
        if any(t.shape[d] != first.shape[d] for d in range(rank) if d != axis):
            raise ctx.fail(f"input {i} shape {list(t.shape)} differs from input 0 "
                           f"{list(first.shape)} outside axis {axis}")
        out_shape[axis] += t.shape[axis]
    _check_output_shape(ctx, out_shape)
    out_q = _quantization_pair(ctx.output_tensor())
    if dtype == np.int8:
        for i, t in enumerate(tensors):
            if _quantization_pair(t) != out_q:
                raise ctx.unsupported(
                    f"int8 input {i} quantized {_quantization_pair(t)} unlike the output {out_q}: "
                    f"LiteRT's int8 CONCATENATION does not requantize and rejects this model")
    if dtype == np.int16 and (out_q[1] != 0 or any(_quantization_pair(t)[1] for t in tensors)):
        raise ctx.fail("int16 CONCATENATION needs zero points of 0")
    requantize = ()
    if dtype == np.uint8:
        requantize = tuple(_uint8_requantize_params(_quantization_pair(t), out_q) for t in tensors)
    return ConcatPlan(axis, False, requantize)


def _requantize_uint8(q: np.ndarray, params, saturating: bool, fused: bool) -> np.ndarray:
    scale, bias, output_zero_point = params
    if fused:  # the build contracts q * scale + bias into one FMA (Profile.float_contracted)
        real = np.empty(q.size, np.float32)
        _kernels_pointwise.fused_multiply_add_scalars(q.reshape(-1).astype(np.float32), scale, bias, real)
        real = real.reshape(q.shape)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            real = q.astype(np.float32) * scale + bias  # two float32 roundings
    # the zero point is added in int32 (wrapping: a saturated conversion plus zp can overflow)
    value = wrap_to_int32(truncate_to_int32(round_half_away(real), saturating) + output_zero_point)
    return np.clip(value, 0, 255).astype(np.uint8)


@register("CONCATENATION", prepare=_prepare_concatenation)
def concatenation(ctx: OpContext, inputs: list) -> list:
    plan: ConcatPlan = ctx.params
    if plan.scalars:
        return [np.stack([np.asarray(v) for v in inputs])]
    if plan.requantize:
        fused = "CONCATENATION" in ctx.profile.float_contracted
        inputs = [v if p is None else _requantize_uint8(v, p, ctx.profile.saturating_conversion, fused)
                  for v, p in zip(inputs, plan.requantize)]
    return [np.concatenate(inputs, axis=plan.axis)]


# --- TILE -------------------------------------------------------------------------------------


def _tile_multiples(ctx: OpContext, values) -> tuple[int, ...]:
    x_t, m_t = ctx.input_tensor(0), ctx.input_tensor(1)
    multiples = _int_vector(ctx, m_t, values, "multipliers", dtypes=(np.int32, np.int64))
    if len(multiples) != len(x_t.shape):
        raise ctx.fail(f"{len(multiples)} multipliers for a {len(x_t.shape)}-D input")
    for d, m in zip(x_t.shape, multiples):
        if m < 0:
            raise ctx.fail(f"multipliers {multiples} must be >= 0")
        if d * m > INT32_MAX:
            raise ctx.fail(f"tiled dimension {d} x {m} overflows int32")
    _check_output_shape(ctx, [d * m for d, m in zip(x_t.shape, multiples)])
    return tuple(multiples)


def _prepare_tile(ctx: OpContext) -> tuple[int, ...] | None:
    _check_arity(ctx, 2)
    m_t = ctx.input_tensor(1)
    if m_t is None:
        raise ctx.fail("the multipliers input is required")
    _check_data_dtype(ctx)
    if m_t.dtype not in (np.int32, np.int64):
        raise ctx.fail(f"multipliers must be int32 or int64, not {m_t.dtype.name}")
    return _tile_multiples(ctx, m_t.data) if m_t.is_constant else None


@register("TILE", prepare=_prepare_tile)
def tile(ctx: OpContext, inputs: list) -> list:
    multiples = ctx.params if ctx.params is not None else _tile_multiples(ctx, inputs[1])
    x = inputs[0]
    if x.ndim == 0:
        return [np.array(x, copy=True)]
    return [np.tile(x, multiples)]
