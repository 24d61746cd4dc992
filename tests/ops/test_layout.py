"""SPLIT, SPLIT_V, UNPACK, TRANSPOSE, GATHER, GATHER_ND: refnet vs LiteRT on single-op models, every
dtype MobileNet graphs carry, on each CPU path; out-of-range indices are typed errors."""
from __future__ import annotations

import numpy as np
import pytest

from refnet.errors import InvalidModelError, OpExecutionError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

DTYPES = [np.float32, np.int8, np.uint8, np.int32]
PATHS = ["reference", "optimized", "xnnpack"]


def _q(dtype):
    return {"scale": 0.05, "zero_point": 3} if dtype in (np.int8, np.uint8) else {}


def random_shape(rng, rank=None):
    rank = int(rng.integers(1, 5)) if rank is None else rank
    return tuple(int(d) for d in rng.integers(1, 6, size=rank))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_split_split_v_unpack(dtype, path):
    rng = np.random.default_rng(DTYPES.index(dtype) + 10 * PATHS.index(path))
    for case in range(30):
        shape = list(random_shape(rng))
        axis = int(rng.integers(-len(shape), len(shape)))
        a = axis % len(shape)
        kind = ("SPLIT", "SPLIT_V", "UNPACK")[case % 3]
        mb = ModelBuilder()
        if kind == "SPLIT":
            n = int(rng.choice([d for d in (1, 2, 3) if True]))
            shape[a] *= n
        x = mb.input("x", tuple(shape), dtype, **_q(dtype))
        if kind == "SPLIT":
            outs = [mb.tensor(f"y{i}", tuple(shape[:a] + [shape[a] // n] + shape[a + 1:]), dtype, **_q(dtype))
                    for i in range(n)]
            ax = mb.tensor("axis", (), np.int32, data=np.array(axis, np.int32))
            mb.op("SPLIT", [ax, x], outs, num_splits=n)
        elif kind == "SPLIT_V":
            cuts = sorted(rng.integers(0, shape[a] + 1, size=int(rng.integers(0, 3))).tolist())
            sizes = np.diff([0] + cuts + [shape[a]]).tolist()
            shown = list(sizes)
            if len(sizes) > 1 and rng.random() < 0.5:
                shown[int(rng.integers(0, len(sizes)))] = -1
            outs = [mb.tensor(f"y{i}", tuple(shape[:a] + [s] + shape[a + 1:]), dtype, **_q(dtype))
                    for i, s in enumerate(sizes)]
            st = mb.tensor("sizes", (len(sizes),), np.int32, data=np.array(shown, np.int32))
            ax = mb.tensor("axis", (1,), np.int32, data=np.array([axis], np.int32))
            mb.op("SPLIT_V", [x, st, ax], outs, num_splits=len(sizes))
        else:
            outs = [mb.tensor(f"y{i}", tuple(shape[:a] + shape[a + 1:]), dtype, **_q(dtype)) for i in range(shape[a])]
            mb.op("UNPACK", [x], outs, num=shape[a], axis=axis)
        mb.outputs.extend(outs)
        assert_bit_exact(mb.build(), [random_input(tuple(shape), dtype, rng)], path=path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose(dtype, path):
    rng = np.random.default_rng(100 + DTYPES.index(dtype) + 10 * PATHS.index(path))
    for case in range(30):
        shape = random_shape(rng, rank=int(rng.integers(1, 6)))
        perm = rng.permutation(len(shape)).astype(np.int32)
        mb = ModelBuilder()
        x = mb.input("x", shape, dtype, **_q(dtype))
        p = mb.tensor("perm", (len(shape),), np.int32, data=perm)
        y = mb.tensor("y", tuple(shape[i] for i in perm), dtype, **_q(dtype))
        mb.op("TRANSPOSE", [x, p], [y])
        mb.outputs.append(y)
        assert_bit_exact(mb.build(), [random_input(shape, dtype, rng)], path=path)


def _gather_model(shape, idx_shape, axis, dtype, index_dtype, batch_dims=0, nd=False):
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, **_q(dtype))
    i = mb.input("indices", idx_shape, index_dtype)
    if nd:
        out_shape = tuple(idx_shape[:-1]) + tuple(shape[idx_shape[-1]:])
    else:
        a = axis % len(shape)
        out_shape = tuple(shape[:a]) + tuple(idx_shape[batch_dims:]) + tuple(shape[a + 1:])
    y = mb.tensor("y", out_shape, dtype, **_q(dtype))
    if nd:
        mb.op("GATHER_ND", [x, i], [y])
    else:
        mb.op("GATHER", [x, i], [y], axis=axis, batch_dims=batch_dims)
    mb.outputs.append(y)
    return mb.build()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_and_gather_nd(dtype, path):
    rng = np.random.default_rng(200 + DTYPES.index(dtype) + 10 * PATHS.index(path))
    for case in range(40):
        shape = random_shape(rng)
        index_dtype = np.int32 if case % 2 else np.int64
        if case % 4 < 2:  # GATHER
            axis = int(rng.integers(-len(shape), len(shape)))
            a = axis % len(shape)
            batch_dims = int(rng.integers(0, a + 1)) if case % 8 == 1 else 0
            idx_shape = tuple(shape[:batch_dims]) + random_shape(rng, rank=int(rng.integers(1, 3)))
            model = _gather_model(shape, idx_shape, axis, dtype, index_dtype, batch_dims)
            idx = rng.integers(0, shape[a], size=idx_shape).astype(index_dtype)
        else:  # GATHER_ND: a MoveNet-style keypoint pick
            depth = int(rng.integers(1, len(shape) + 1))
            idx_shape = random_shape(rng, rank=int(rng.integers(1, 3))) + (depth,)
            model = _gather_model(shape, idx_shape, 0, dtype, index_dtype, nd=True)
            idx = np.stack([rng.integers(0, shape[d], size=idx_shape[:-1]) for d in range(depth)], -1).astype(index_dtype)
        assert_bit_exact(model, [random_input(shape, dtype, rng), idx], path=path)


def test_indices_outside_the_params_are_typed_errors():
    model = _gather_model((4, 3), (2,), 0, np.float32, np.int32)
    with pytest.raises(OpExecutionError, match=r"index 4 is outside \[0, 4\)"):
        run_refnet(model, [np.zeros((4, 3), np.float32), np.array([1, 4], np.int32)])
    model = _gather_model((4, 3), (1, 2), 0, np.float32, np.int32, nd=True)
    with pytest.raises(OpExecutionError, match=r"dimension 1\) -1 is outside \[0, 3\)"):
        run_refnet(model, [np.zeros((4, 3), np.float32), np.array([[1, -1]], np.int32)])
    mb = ModelBuilder()
    x = mb.input("x", (4, 6), np.float32)
    ax = mb.tensor("axis", (), np.int32, data=np.array(1, np.int32))
    outs = [mb.tensor(f"y{i}", (4, 2), np.float32) for i in range(4)]
    mb.op("SPLIT", [ax, x], outs, num_splits=4)
    mb.outputs.extend(outs)
    with pytest.raises(InvalidModelError, match="num_splits 4 must equal the outputs"):
        run_refnet(mb.build(), [np.zeros((4, 6), np.float32)])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_depth_to_space_and_space_batch(dtype, path):
    """DeepLab's atrous convolutions as TF1 converts them (SPACE_TO_BATCH_ND ... BATCH_TO_SPACE_ND),
    and DEPTH_TO_SPACE, with padding (the zero point when quantized) and crops."""
    rng = np.random.default_rng(300 + DTYPES.index(dtype) + 10 * PATHS.index(path))
    for case in range(30):
        mb = ModelBuilder()
        b = [int(v) for v in rng.integers(1, 4, size=2)]
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        if case % 3 == 0:
            k = int(rng.integers(1, 4))
            shape = (n, int(rng.integers(1, 5)), int(rng.integers(1, 5)), c * k * k)
            x = mb.input("x", shape, dtype, **_q(dtype))
            y = mb.tensor("y", (n, shape[1] * k, shape[2] * k, c), dtype, **_q(dtype))
            mb.op("DEPTH_TO_SPACE", [x], [y], block_size=k)
        elif case % 3 == 1:
            pads = [[int(v) for v in rng.integers(0, 3, size=2)] for _ in range(2)]
            hp = [int(rng.integers(1, 4)) * b[i] for i in range(2)]
            h, w = max(hp[0] - sum(pads[0]), 1), max(hp[1] - sum(pads[1]), 1)
            pads[0][1] += hp[0] - h - sum(pads[0]) if hp[0] - h - sum(pads[0]) >= 0 else 0
            pads[1][1] += hp[1] - w - sum(pads[1]) if hp[1] - w - sum(pads[1]) >= 0 else 0
            hp = [h + sum(pads[0]), w + sum(pads[1])]
            if hp[0] % b[0] or hp[1] % b[1]:
                continue
            shape = (n, h, w, c)
            x = mb.input("x", shape, dtype, **_q(dtype))
            bs = mb.tensor("block", (2,), np.int32, data=np.array(b, np.int32))
            pd = mb.tensor("paddings", (2, 2), np.int32, data=np.array(pads, np.int32))
            y = mb.tensor("y", (n * b[0] * b[1], hp[0] // b[0], hp[1] // b[1], c), dtype, **_q(dtype))
            mb.op("SPACE_TO_BATCH_ND", [x, bs, pd], [y])
        else:
            h, w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            crops = [[int(rng.integers(0, b[0] * h // 2 + 1)), 0], [0, int(rng.integers(0, b[1] * w // 2 + 1))]]
            shape = (n * b[0] * b[1], h, w, c)
            x = mb.input("x", shape, dtype, **_q(dtype))
            bs = mb.tensor("block", (2,), np.int32, data=np.array(b, np.int32))
            cr = mb.tensor("crops", (2, 2), np.int32, data=np.array(crops, np.int32))
            y = mb.tensor("y", (n, h * b[0] - sum(crops[0]), w * b[1] - sum(crops[1]), c), dtype, **_q(dtype))
            mb.op("BATCH_TO_SPACE_ND", [x, bs, cr], [y])
        mb.outputs.append(y)
        assert_bit_exact(mb.build(), [random_input(shape, dtype, rng)], path=path)
