"""Shape and data-movement ops vs LiteRT BUILTIN_REF, bit for bit, on single-op models:
RESHAPE, SQUEEZE, SHAPE, STRIDED_SLICE, PACK, PAD, CONCATENATION, TILE."""
from __future__ import annotations

import numpy as np
import pytest

import refnet
from refnet.errors import InvalidModelError, RefnetError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

DTYPES = [np.float32, np.int8, np.uint8, np.int32, np.int64]


def quant_kwargs(dtype, rng):
    if dtype in (np.int8, np.uint8):
        info = np.iinfo(dtype)
        return {"scale": float(rng.choice([0.01, 0.5, 3.0])),
                "zero_point": int(rng.integers(info.min, info.max + 1))}
    return {}


def data(shape, dtype, rng):
    return random_input(shape, dtype, rng)


# --- RESHAPE ----------------------------------------------------------------------------------


def reshape_model(in_shape, out_shape, dtype, request, mode, q):
    mb = ModelBuilder()
    x = mb.input("x", in_shape, dtype, **q)
    y = mb.tensor("y", out_shape, dtype, **q)
    mb.outputs.append(y)
    if mode == "option":
        mb.op("RESHAPE", [x], [y], new_shape=list(request))
    elif mode == "tensor":
        s = mb.tensor("shape", (len(request),), np.int32, data=np.asarray(request, np.int32))
        mb.op("RESHAPE", [x, s], [y], new_shape=list(request))
    else:  # the shape arrives as a model input
        s = mb.input("shape", (len(request),), np.int32)
        mb.op("RESHAPE", [x, s], [y])
    return mb.build()


def test_reshape_random():
    rng = np.random.default_rng(100)
    for case in range(150):
        dtype = DTYPES[case % len(DTYPES)]
        in_shape = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 5))))
        n = int(np.prod(in_shape))
        out_shape = list(rng.permutation(in_shape)) + [1] * int(rng.integers(0, 2))
        request = list(out_shape)
        if rng.random() < 0.5:
            request[int(rng.integers(0, len(request)))] = -1
        mode = ["option", "tensor", "input"][case % 3]
        q = quant_kwargs(dtype, rng)
        model = reshape_model(in_shape, out_shape, dtype, request, mode, q)
        inputs = [data(in_shape, dtype, rng)]
        if mode == "input":
            inputs.append(np.asarray(request, np.int32))
        assert int(np.prod(out_shape)) == n
        assert_bit_exact(model, inputs)


def test_reshape_scalar_and_legacy_zero():
    rng = np.random.default_rng(101)
    for request in ([], [0]):  # [0] is the legacy spelling of a scalar
        assert_bit_exact(reshape_model((1, 1), (), np.float32, request, "option", {}),
                         [data((1, 1), np.float32, rng)])


def test_reshape_rejects_bad_requests():
    x = np.zeros((2, 3), np.float32)
    for request, out in [([4, -1], (4, 2)), ([-1, -1], (6, 1)), ([7], (7,)), ([-2, -3], (2, 3))]:
        with pytest.raises(InvalidModelError):
            run_refnet(reshape_model((2, 3), out, np.float32, request, "tensor", {}), [x])
    with pytest.raises(InvalidModelError):  # resolves to (6,) but the model declares (3, 2)
        run_refnet(reshape_model((2, 3), (3, 2), np.float32, [-1], "option", {}), [x])


# --- SQUEEZE / SHAPE --------------------------------------------------------------------------


def test_squeeze_random():
    rng = np.random.default_rng(110)
    for case in range(120):
        dtype = DTYPES[case % len(DTYPES)]
        rank = int(rng.integers(1, 7))
        shape = [int(d) if rng.random() < 0.5 else 1 for d in rng.integers(1, 4, size=rank)]
        ones = [i for i, d in enumerate(shape) if d == 1]
        dims = [] if not ones or rng.random() < 0.3 else \
            [int(i) - rank if rng.random() < 0.5 else int(i)
             for i in rng.choice(ones, size=int(rng.integers(1, len(ones) + 1)), replace=False)]
        squeezed = {d % rank for d in dims} if dims else set(ones)
        out = [d for i, d in enumerate(shape) if i not in squeezed]
        q = quant_kwargs(dtype, rng)
        mb = ModelBuilder()
        x = mb.input("x", shape, dtype, **q)
        y = mb.tensor("y", out, dtype, **q)
        mb.outputs.append(y)
        mb.op("SQUEEZE", [x], [y], squeeze_dims=dims)
        assert_bit_exact(mb.build(), [data(shape, dtype, rng)])


def test_squeeze_rejects_non_unit_dimension():
    mb = ModelBuilder()
    x = mb.input("x", (1, 3), np.float32)
    y = mb.tensor("y", (1,), np.float32)
    mb.outputs.append(y)
    mb.op("SQUEEZE", [x], [y], squeeze_dims=[1])
    with pytest.raises(InvalidModelError):
        run_refnet(mb.build(), [np.zeros((1, 3), np.float32)])


@pytest.mark.parametrize("out_type, dtype", [(2, np.int32), (4, np.int64)])
def test_shape(out_type, dtype):
    rng = np.random.default_rng(120)
    for shape in [(1,), (3, 1, 4), (2, 7, 7, 1280), (1, 1, 1, 1, 5)]:
        mb = ModelBuilder()
        x = mb.input("x", shape, np.float32)
        y = mb.tensor("y", (len(shape),), dtype)
        mb.outputs.append(y)
        mb.op("SHAPE", [x], [y], out_type=out_type)
        model = mb.build()
        assert_bit_exact(model, [data(shape, np.float32, rng)])
        got = run_refnet(model, [data(shape, np.float32, rng)])[1]
        assert got.dtype == dtype and got.tolist() == list(shape)


# --- STRIDED_SLICE ----------------------------------------------------------------------------


def strided_slice_model(in_shape, dtype, begin, end, strides, masks, out_shape, q, as_inputs=False):
    mb = ModelBuilder()
    x = mb.input("x", in_shape, dtype, **q)
    idx = []
    for name, v in (("begin", begin), ("end", end), ("strides", strides)):
        v = np.asarray(v, np.int32)
        idx.append(mb.input(name, v.shape, np.int32) if as_inputs
                   else mb.tensor(name, v.shape, np.int32, data=v))
    y = mb.tensor("y", out_shape, dtype, **q)
    mb.outputs.append(y)
    mb.op("STRIDED_SLICE", [x] + idx, [y], **masks)
    return mb.build()


def slice_output_shape(in_shape, begin, end, strides, masks):
    """Ask refnet's shape logic (via a throwaway model) what the output shape is; compared
    against LiteRT by the bit-exact check, which also compares shapes."""
    from refnet.ops import OpContext
    from refnet.ops.shape_ops import _slice_output_shape

    mb = ModelBuilder()
    x = mb.input("x", in_shape, np.float32)
    y = mb.tensor("y", (1,), np.float32)
    mb.outputs.append(y)
    mb.op("STRIDED_SLICE", [x, x, x, x], [y], **masks)
    graph = mb.graph()
    ctx = OpContext(op=graph.ops[0], graph=graph, profile=refnet.profile.REFERENCE)
    return _slice_output_shape(ctx, in_shape, begin, end, strides)


def random_slice(rng, in_shape):
    rank = len(in_shape)
    count = int(rng.integers(1, rank + 1))
    begin, end, strides = [], [], []
    for i in range(count):
        size = in_shape[i] if i < rank else 1
        stride = int(rng.choice([1, 1, 2, 3, -1, -2]))
        begin.append(int(rng.integers(-size - 2, size + 3)))
        end.append(int(rng.integers(-size - 2, size + 3)))
        strides.append(stride)
    bits = (1 << count) - 1
    masks = {"begin_mask": int(rng.integers(0, bits + 1)) if rng.random() < 0.5 else 0,
             "end_mask": int(rng.integers(0, bits + 1)) if rng.random() < 0.5 else 0,
             "shrink_axis_mask": 0, "ellipsis_mask": 0, "new_axis_mask": 0}
    r = rng.random()
    if r < 0.25:
        masks["shrink_axis_mask"] = int(rng.integers(0, bits + 1))
    elif r < 0.45:
        masks["ellipsis_mask"] = 1 << int(rng.integers(0, count))
    if rng.random() < 0.25:
        masks["new_axis_mask"] = int(rng.integers(0, bits + 1))
    return begin, end, strides, masks


def test_strided_slice_random():
    rng = np.random.default_rng(130)
    compared = rejected = 0
    for case in range(800):
        dtype = DTYPES[case % len(DTYPES)]
        in_shape = tuple(int(d) for d in rng.integers(1, 6, size=int(rng.integers(1, 6))))
        begin, end, strides, masks = random_slice(rng, in_shape)
        for i, s in enumerate(strides):  # shrunk axes take one element forward (TF semantics)
            if masks["shrink_axis_mask"] >> i & 1:
                strides[i] = 1
        try:
            out_shape = slice_output_shape(in_shape, begin, end, strides, masks)
            q = quant_kwargs(dtype, rng)
            model = strided_slice_model(in_shape, dtype, begin, end, strides, masks, out_shape, q)
            run_refnet(model, [data(in_shape, dtype, rng)])
        except RefnetError:
            rejected += 1
            continue
        assert_bit_exact(model, [data(in_shape, dtype, rng)])
        compared += 1
    assert compared >= 700, (compared, rejected)


def test_strided_slice_mobilenet_patterns():
    """The slices converters emit: shape[0] of a SHAPE output, last-axis crops, reversal."""
    rng = np.random.default_rng(131)
    cases = [
        ((4,), [0], [1], [1], {"shrink_axis_mask": 1}),
        ((1, 7, 7, 32), [0, 0, 0, 0], [1, 7, 7, 16], [1, 1, 1, 1], {}),
        ((1, 8, 8, 3), [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, -1], {"begin_mask": 15, "end_mask": 15}),
        ((2, 5, 6), [0, 1], [0, -1], [1, 2], {"begin_mask": 1, "end_mask": 1}),
        ((2, 5, 6), [1], [3], [1], {"ellipsis_mask": 0}),
        ((2, 5, 6), [0, 2], [0, 5], [1, 1], {"ellipsis_mask": 1}),
        ((2, 5, 6), [0, 0, 1], [0, 0, 3], [1, 1, 1], {"new_axis_mask": 1, "begin_mask": 2, "end_mask": 2}),
        ((3, 4), [-1, -1], [-4, -5], [-1, -1], {}),
        ((3, 4), [1, 0], [0, 0], [1, 1], {"shrink_axis_mask": 1, "end_mask": 2}),
    ]
    for in_shape, begin, end, strides, masks in cases:
        for dtype in (np.float32, np.int8, np.uint8):
            out_shape = slice_output_shape(in_shape, begin, end, strides, masks)
            model = strided_slice_model(in_shape, dtype, begin, end, strides, masks, out_shape,
                                        quant_kwargs(dtype, rng))
            assert_bit_exact(model, [data(in_shape, dtype, rng)])


def test_strided_slice_offset():
    """offset=True: `end` holds sizes, added to the begin index."""
    rng = np.random.default_rng(132)
    for in_shape, begin, size, strides in [((4, 5), [1, 0], [2, 5], [1, 1]),
                                           ((4, 5), [-3, 1], [3, 2], [1, 2]),
                                           ((2, 6, 3), [0, 2, 1], [2, 3, 1], [1, 1, 1])]:
        masks = {"offset": True}
        out_shape = slice_output_shape(in_shape, begin, size, strides, masks)
        model = strided_slice_model(in_shape, np.float32, begin, size, strides, masks, out_shape, {})
        assert_bit_exact(model, [data(in_shape, np.float32, rng)])


def test_strided_slice_indices_as_inputs():
    rng = np.random.default_rng(133)
    in_shape, begin, end, strides = (3, 6, 4), [0, 5, 1], [3, 0, 4], [2, -2, 1]
    out_shape = slice_output_shape(in_shape, begin, end, strides, {})
    model = strided_slice_model(in_shape, np.float32, begin, end, strides, {}, out_shape, {},
                                as_inputs=True)
    assert_bit_exact(model, [data(in_shape, np.float32, rng)] +
                     [np.asarray(v, np.int32) for v in (begin, end, strides)])


def test_strided_slice_rejects_zero_stride_and_rank_mismatch():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(InvalidModelError):
        run_refnet(strided_slice_model((2, 3), np.float32, [0], [1], [0], {}, (1, 3), {}), [x])
    mb = ModelBuilder()
    xi = mb.input("x", (2, 3), np.float32)
    b = mb.tensor("b", (2,), np.int32, data=np.zeros(2, np.int32))
    e = mb.tensor("e", (1,), np.int32, data=np.ones(1, np.int32))
    s = mb.tensor("s", (2,), np.int32, data=np.ones(2, np.int32))
    y = mb.tensor("y", (1, 1), np.float32)
    mb.outputs.append(y)
    mb.op("STRIDED_SLICE", [xi, b, e, s], [y])
    with pytest.raises(InvalidModelError):
        run_refnet(mb.build(), [x])


# --- PACK -------------------------------------------------------------------------------------


def test_pack_random():
    rng = np.random.default_rng(140)
    for case in range(120):
        dtype = DTYPES[case % len(DTYPES)]
        shape = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(0, 4))))
        n = int(rng.integers(1, 5))
        rank = len(shape) + 1
        axis = int(rng.integers(-rank, rank))
        q = quant_kwargs(dtype, rng)
        mb = ModelBuilder()
        xs = [mb.input(f"x{i}", shape, dtype, **q) for i in range(n)]
        out = list(shape)
        out.insert(axis % rank, n)
        y = mb.tensor("y", out, dtype, **q)
        mb.outputs.append(y)
        mb.op("PACK", xs, [y], values_count=n, axis=axis)
        assert_bit_exact(mb.build(), [data(shape, dtype, rng) for _ in range(n)])


def test_pack_rejects_different_quantization():
    mb = ModelBuilder()
    a = mb.input("a", (2,), np.uint8, scale=0.1, zero_point=3)
    b = mb.input("b", (2,), np.uint8, scale=0.2, zero_point=3)
    y = mb.tensor("y", (2, 2), np.uint8, scale=0.1, zero_point=3)
    mb.outputs.append(y)
    mb.op("PACK", [a, b], [y], values_count=2, axis=0)
    with pytest.raises(InvalidModelError):
        run_refnet(mb.build(), [np.zeros(2, np.uint8)] * 2)


# --- PAD --------------------------------------------------------------------------------------


def pad_model(shape, dtype, paddings, pad_dtype, q, out_q=None, as_input=False):
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, **q)
    p = np.asarray(paddings, pad_dtype).reshape(len(shape), 2)
    pt = mb.input("paddings", p.shape, pad_dtype) if as_input else \
        mb.tensor("paddings", p.shape, pad_dtype, data=p)
    out = [d + a + b for d, (a, b) in zip(shape, p.tolist())]
    y = mb.tensor("y", out, dtype, **(q if out_q is None else out_q))
    mb.outputs.append(y)
    mb.op("PAD", [x, pt], [y])
    return mb.build()


def test_pad_random():
    rng = np.random.default_rng(150)
    for case in range(150):
        dtype = DTYPES[case % len(DTYPES)]
        rank = int(rng.integers(1, 6))
        shape = tuple(int(d) for d in rng.integers(1, 5, size=rank))
        paddings = rng.integers(0, 3, size=(rank, 2))
        if rank == 4 and rng.random() < 0.5:  # the "image style" pattern: no batch/channel pad
            paddings[0] = paddings[3] = 0
        pad_dtype = np.int32 if case % 2 else np.int64
        q = quant_kwargs(dtype, rng)
        out_q = quant_kwargs(dtype, rng) if q and rng.random() < 0.3 else None
        model = pad_model(shape, dtype, paddings, pad_dtype, q, out_q)
        assert_bit_exact(model, [data(shape, dtype, rng)])


def test_pad_zero_point_extremes_and_unquantized_int8():
    rng = np.random.default_rng(151)
    shape = (1, 3, 3, 2)
    paddings = [[0, 0], [1, 2], [2, 1], [0, 0]]
    for dtype in (np.int8, np.uint8):
        info = np.iinfo(dtype)
        for zp in (info.min, info.max, 0):
            model = pad_model(shape, dtype, paddings, np.int32, {"scale": 0.1, "zero_point": zp})
            assert_bit_exact(model, [data(shape, dtype, rng)])
    # int8 without quantization pads with 0.
    assert_bit_exact(pad_model(shape, np.int8, paddings, np.int32, {}), [data(shape, np.int8, rng)])


def test_pad_paddings_as_input():
    rng = np.random.default_rng(152)
    shape = (2, 3, 4)
    paddings = np.array([[1, 0], [0, 2], [3, 1]], np.int32)
    model = pad_model(shape, np.float32, paddings, np.int32, {}, as_input=True)
    assert_bit_exact(model, [data(shape, np.float32, rng), paddings])


def test_pad_rejects_negative_paddings():
    with pytest.raises(InvalidModelError):
        run_refnet(pad_model((2, 3), np.float32, [[0, 0], [-1, 2]], np.int32, {}),
                   [np.zeros((2, 3), np.float32)])


# --- CONCATENATION ----------------------------------------------------------------------------


def concat_model(shapes, dtype, axis, qs, out_q, act="NONE"):
    mb = ModelBuilder()
    xs = [mb.input(f"x{i}", s, dtype, **q) for i, (s, q) in enumerate(zip(shapes, qs))]
    rank = len(shapes[0])
    a = axis % rank
    out = list(shapes[0])
    out[a] = sum(s[a] for s in shapes)
    y = mb.tensor("y", out, dtype, **out_q)
    mb.outputs.append(y)
    mb.op("CONCATENATION", xs, [y], axis=axis, fused_activation_function=act)
    return mb.build()


def random_concat_shapes(rng):
    rank = int(rng.integers(1, 5))
    base = [int(d) for d in rng.integers(1, 5, size=rank)]
    axis = int(rng.integers(-rank, rank))
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        s = list(base)
        s[axis % rank] = int(rng.integers(1, 5))
        shapes.append(tuple(s))
    return shapes, axis


def test_concatenation_same_quantization():
    rng = np.random.default_rng(160)
    for case in range(150):
        dtype = DTYPES[case % len(DTYPES)]
        shapes, axis = random_concat_shapes(rng)
        q = quant_kwargs(dtype, rng)
        model = concat_model(shapes, dtype, axis, [q] * len(shapes), q)
        assert_bit_exact(model, [data(s, dtype, rng) for s in shapes])


def test_concatenation_uint8_requantizes():
    """Inputs quantized unlike the output are requantized in float32 by the reference."""
    rng = np.random.default_rng(161)
    scales = [1e-4, 0.0039215, 0.01, 0.023529, 0.1, 0.5, 1.0, 7.0, 300.0]
    for case in range(200):
        shapes, axis = random_concat_shapes(rng)
        qs = []
        for _ in shapes:
            if rng.random() < 0.25:
                qs.append(None)
            else:
                qs.append({"scale": float(rng.choice(scales)) * float(rng.uniform(0.5, 2)),
                           "zero_point": int(rng.choice([0, 255, int(rng.integers(0, 256))]))})
        out_q = {"scale": float(rng.choice(scales)), "zero_point": int(rng.integers(0, 256))}
        qs = [out_q if q is None else q for q in qs]
        model = concat_model(shapes, np.uint8, axis, qs, out_q)
        assert_bit_exact(model, [data(s, np.uint8, rng) for s in shapes])


def test_concatenation_uint8_ties_and_huge_ratios():
    """Scale ratios that land exactly on .5 (round half away from zero) and ratios so large
    the float exceeds int32 before the clamp."""
    shapes = [(1, 2, 256), (1, 2, 256)]
    x = np.tile(np.arange(256, dtype=np.uint8), (1, 2, 1))
    for in_q, out_q in [({"scale": 0.5, "zero_point": 0}, {"scale": 1.0, "zero_point": 0}),
                        ({"scale": 1.5, "zero_point": 7}, {"scale": 1.0, "zero_point": 3}),
                        ({"scale": 0.25, "zero_point": 128}, {"scale": 0.5, "zero_point": 128}),
                        ({"scale": 1e9, "zero_point": 100}, {"scale": 1e-3, "zero_point": 5}),
                        ({"scale": 1.0, "zero_point": 0}, {"scale": 1.0, "zero_point": 255})]:
        model = concat_model(shapes, np.uint8, 2, [in_q, out_q], out_q)
        assert_bit_exact(model, [x, x])


def test_concatenation_rejections():
    s = [(1, 2), (1, 3)]
    q1, q2 = {"scale": 0.1, "zero_point": 1}, {"scale": 0.2, "zero_point": 1}
    with pytest.raises(UnsupportedOpError):  # int8 inputs must share the output's quantization
        run_refnet(concat_model(s, np.int8, 1, [q1, q2], q1), [np.zeros(v, np.int8) for v in s])
    with pytest.raises(UnsupportedOpError):  # LiteRT rejects fused activations here
        run_refnet(concat_model(s, np.float32, 1, [{}, {}], {}, act="RELU"),
                   [np.zeros(v, np.float32) for v in s])
    with pytest.raises(InvalidModelError):  # shapes disagree outside the axis
        mb = ModelBuilder()
        a, b = mb.input("a", (1, 2), np.float32), mb.input("b", (2, 2), np.float32)
        y = mb.tensor("y", (1, 4), np.float32)
        mb.outputs.append(y)
        mb.op("CONCATENATION", [a, b], [y], axis=1)
        run_refnet(mb.build(), [np.zeros((1, 2), np.float32), np.zeros((2, 2), np.float32)])


# --- TILE -------------------------------------------------------------------------------------


def test_tile_random():
    rng = np.random.default_rng(170)
    for case in range(120):
        dtype = DTYPES[case % len(DTYPES)]
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 4, size=rank))
        mult = [int(m) for m in rng.integers(1, 4, size=rank)]
        m_dtype = np.int32 if case % 2 else np.int64
        q = quant_kwargs(dtype, rng)
        mb = ModelBuilder()
        x = mb.input("x", shape, dtype, **q)
        as_input = case % 5 == 0
        m = mb.input("m", (rank,), m_dtype) if as_input else \
            mb.tensor("m", (rank,), m_dtype, data=np.asarray(mult, m_dtype))
        y = mb.tensor("y", [d * k for d, k in zip(shape, mult)], dtype, **q)
        mb.outputs.append(y)
        mb.op("TILE", [x, m], [y])
        inputs = [data(shape, dtype, rng)] + ([np.asarray(mult, m_dtype)] if as_input else [])
        assert_bit_exact(mb.build(), inputs)
