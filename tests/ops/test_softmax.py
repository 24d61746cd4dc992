"""SOFTMAX against LiteRT BUILTIN_REF on randomized single-op models, and LiteRT's aborts."""
import numpy as np
import pytest

import refnet
from refnet import InvalidModelError, OpExecutionError, UnsupportedOpError
from refnet.litert import LiteRTCrashed, run_litert
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet
from refnet.bits import same_bits

PAIRS = [(np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.int16), (np.uint8, np.int16)]
ACC_ONE = 1 << 19  # 1.0 in the Q12.19 sum of exponentials


def build(shape, in_dtype, out_dtype, beta=1.0, in_quant=None, out_quant=None):
    mb = ModelBuilder()
    x = mb.input("x", shape, in_dtype, **(in_quant or {}))
    y = mb.tensor("y", shape, out_dtype, **(out_quant or {}))
    mb.outputs.append(y)
    mb.op("SOFTMAX", [x], [y], beta=beta)
    return mb.build()


def output_quant(out_dtype, rng):
    if out_dtype == np.int8:
        return dict(scale=1 / 256, zero_point=-128)
    if out_dtype == np.int16:
        return dict(scale=1 / 32768, zero_point=0)
    # uint8: LiteRT ignores the output quantization (it writes 1/256 steps from 0)
    return dict(scale=1 / 256, zero_point=0) if rng.random() < 0.7 else dict(scale=0.1, zero_point=7)


def random_shape(rng, max_depth=1001, max_elements=6000):
    depth = int(rng.choice([1, 2, 3, 10, 64, 511, 1000, 1001, int(rng.integers(1, max_depth + 1))]))
    outer = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(0, 4)))]
    while outer and int(np.prod(outer)) * depth > max_elements:
        outer.pop()
    return tuple(outer) + (depth,)


def kept_per_row(model, x):
    """How many elements of each row pass diff_min (an upper bound of the row's sum, in 1.0s)."""
    it = refnet.Interpreter(model_content=model)
    it.allocate_tensors()
    diff_min = it._contexts[0].params.diff_min
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    return ((rows - rows.max(axis=1, keepdims=True)) >= diff_min).sum(axis=1)


def float_values(rng, shape):
    x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2.5)).astype(np.float32)
    flat = x.reshape(-1)
    if rng.random() < 0.3:
        specials = np.array([np.inf, -np.inf, np.nan, 3e38, -3e38, 0.0, -0.0, 100.0, -100.0],
                            np.float32)
        k = int(rng.integers(1, min(flat.size, 6) + 1))
        flat[rng.choice(flat.size, k, replace=False)] = rng.choice(specials, k)
    return x


def test_float32():
    rng = np.random.default_rng(1)
    for i in range(250):
        shape = random_shape(rng)
        beta = float(np.float32(rng.choice([1.0, 0.0, -1.0, 10.0 ** rng.uniform(-3, 3)])))
        assert_bit_exact(build(shape, np.float32, np.float32, beta), [float_values(rng, shape)])


@pytest.mark.parametrize("in_dtype,out_dtype", PAIRS)
def test_quantized(in_dtype, out_dtype):
    rng = np.random.default_rng(10 + PAIRS.index((in_dtype, out_dtype)))
    done = skipped = 0
    while done < 250:
        shape = random_shape(rng)
        scale = float(np.float32(10.0 ** rng.uniform(-6, 3)))
        beta = float(np.float32(rng.choice([1.0, 10.0 ** rng.uniform(-2, 2)])))
        if beta * scale * 2**26 <= 1.0:
            continue  # LiteRT aborts in Prepare: test_tiny_scale_abort
        info = np.iinfo(in_dtype)
        model = build(shape, in_dtype, out_dtype, beta,
                      dict(scale=scale, zero_point=int(rng.integers(info.min, int(info.max) + 1))),
                      output_quant(out_dtype, rng))
        x = random_input(shape, in_dtype, rng)
        if rng.random() < 0.2:  # near-ties: many logits at or just below the maximum
            x = np.clip(x, None, np.percentile(x, 30)).astype(in_dtype)
        # A row whose exps add up to 512 would abort LiteRT (int8/uint8 outputs): keep those
        # for test_sum_of_exps_abort.
        if out_dtype != np.int16 and kept_per_row(model, x).max() >= 512:
            skipped += 1
            continue
        assert_bit_exact(model, [x])
        done += 1


def test_every_input_value_and_shift():
    """Each row: the maximum plus every other value, over input scales spanning all shifts."""
    for in_dtype, out_dtype in PAIRS:
        info = np.iinfo(in_dtype)
        every = np.arange(info.min, int(info.max) + 1)
        x = np.stack([np.roll(every, k) for k in (0, 77)]).astype(in_dtype)
        for scale in 2.0 ** np.arange(-24, 12, 0.75):
            model = build(x.shape, in_dtype, out_dtype, 1.0, dict(scale=float(scale), zero_point=0),
                          output_quant(out_dtype, np.random.default_rng(0)))
            assert_bit_exact(model, [x])


def test_sum_of_exps_abort():
    """LiteRT's reference aborts (TFLITE_CHECK(exponent <= 31) in Softmax) once a row's exps
    add up to 512; refnet returns the defined value: the type minimum for the whole row."""
    rng = np.random.default_rng(2)
    # A 1001-class classifier whose logits were quantized with a very wide scale: most logits
    # land on the same few integers, so the maximum is shared by hundreds of classes.
    logits = rng.choice(np.int8([-2, -1, 0, 1]), (2, 1001), p=[0.05, 0.1, 0.25, 0.6])
    logits[1] = rng.integers(-128, 128, 1001)  # an ordinary row next to the aborting one
    model = build(logits.shape, np.int8, np.int8, 1.0, dict(scale=200.0, zero_point=0),
                  dict(scale=1 / 256, zero_point=-128))
    assert kept_per_row(model, logits)[0] >= 512
    with pytest.raises(LiteRTCrashed):
        run_litert(model, [logits], isolated=True)
    ours = run_refnet(model, [logits])[1]
    assert np.all(ours[0] == -128)
    # the ordinary row is LiteRT's, computed alone
    single = build((1, 1001), np.int8, np.int8, 1.0, dict(scale=200.0, zero_point=0),
                   dict(scale=1 / 256, zero_point=-128))
    assert same_bits(ours[1:], run_litert(single, [logits[1:]])[1])
    # 511 maxima: the largest sum LiteRT accepts, bit-exact; 512: it aborts, refnet gives -128
    for n, aborts in ((511, False), (512, True)):
        x = np.zeros((1, n), np.int8)
        m = build(x.shape, np.int8, np.int8, 1.0, dict(scale=0.1, zero_point=0),
                  dict(scale=1 / 256, zero_point=-128))
        if aborts:
            with pytest.raises(LiteRTCrashed):
                run_litert(m, [x], isolated=True)
            assert np.all(run_refnet(m, [x])[1] == -128)
        else:
            assert_bit_exact(m, [x])


def test_tiny_scale_abort():
    """beta * input_scale * 2**26 <= 1: LiteRT aborts in Prepare; refnet raises a typed error."""
    model = build((1, 10), np.int8, np.int8, 1.0, dict(scale=1e-9, zero_point=0),
                  dict(scale=1 / 256, zero_point=-128))
    x = np.zeros((1, 10), np.int8)
    with pytest.raises(LiteRTCrashed):
        run_litert(model, [x], isolated=True)
    with pytest.raises(OpExecutionError, match="aborts"):
        run_refnet(model, [x])


def test_int16_output_sum_overflow():
    x = np.zeros((1, 4096), np.int8)
    model = build(x.shape, np.int8, np.int16, 1.0, dict(scale=0.1, zero_point=0),
                  dict(scale=1 / 32768, zero_point=0))
    with pytest.raises(OpExecutionError, match="int32 accumulator"):
        run_refnet(model, [x])


def test_missing_options_mean_beta_zero():
    mb = ModelBuilder()
    x = mb.input("x", (2, 5), np.float32)
    y = mb.tensor("y", (2, 5), np.float32)
    mb.outputs.append(y)
    mb.op("SOFTMAX", [x], [y])  # no beta given: the options table holds 0
    assert_bit_exact(mb.build(), [np.arange(10, dtype=np.float32).reshape(2, 5)])


def test_bad_models():
    with pytest.raises(InvalidModelError, match="zero point -128"):
        run_refnet(build((1, 4), np.int8, np.int8, 1.0, dict(scale=0.1, zero_point=0),
                         dict(scale=1 / 256, zero_point=0)), [np.zeros((1, 4), np.int8)])
    with pytest.raises(UnsupportedOpError):
        run_refnet(build((1, 4), np.int8, np.uint8, 1.0, dict(scale=0.1, zero_point=0),
                         dict(scale=1 / 256, zero_point=0)), [np.zeros((1, 4), np.int8)])
    with pytest.raises(InvalidModelError, match="rank"):
        run_refnet(build((), np.float32, np.float32), [np.zeros((), np.float32)])


def softmax_tie_cases(count: int, form, seed: int = 2, batches: int = 60, rows: int = 256):
    """Single-op int8/uint8 SOFTMAX cases (one row each) where the reference arithmetic and `form`
    (one of the optimized kernels' forms) give different bytes: near-ties, found by search (fixed
    seed) over batches of rows made as a classifier makes logits (noise around a peak), so that an
    output sits near a rounding boundary now and then."""
    import dataclasses

    from refnet.profile import PROFILES, REFERENCE

    candidate = dataclasses.replace(REFERENCE, name=f"reference@softmax-{form.name.lower()}/x86_64",
                                    rounding_by_op={**REFERENCE.rounding_by_op, ("SOFTMAX", "int8"): form,
                                                    ("SOFTMAX", "uint8"): form})
    PROFILES[candidate.name] = candidate
    rng, cases = np.random.default_rng(seed), []
    try:
        for batch in range(batches):
            dtype = (np.uint8, np.int8)[batch % 2]
            info = np.iinfo(dtype)
            n = int(rng.choice([17, 100, 1001]))
            in_quant = dict(scale=float(np.float32(rng.uniform(0.04, 0.2))),
                            zero_point=int(rng.integers(info.min, int(info.max) + 1)))
            out_quant = dict(scale=1 / 256, zero_point=-128 if dtype == np.int8 else 0)
            logits = rng.normal(0, rng.uniform(3, 25), (rows, n))
            logits[np.arange(rows), rng.integers(0, n, rows)] += rng.uniform(10, 80, rows)
            x = np.clip(np.round(logits) + in_quant["zero_point"], info.min, info.max).astype(dtype)
            content = build(x.shape, dtype, dtype, 1.0, in_quant, out_quant)
            y = refnet.read_tflite(model_content=content).outputs[0]
            reference = run_refnet(content, [x], profile=REFERENCE.name)[y]
            other = run_refnet(content, [x], profile=candidate.name)[y]
            for r in np.flatnonzero((reference != other).any(axis=1)):
                cases.append((build((1, n), dtype, dtype, 1.0, in_quant, out_quant), x[r:r + 1]))
            if len(cases) >= count:
                return cases[:count]
    finally:
        del PROFILES[candidate.name]
    raise AssertionError(f"{len(cases)} of {count} tie cases in {batches} batches of {rows} rows")


@pytest.mark.litert
def test_optimized_and_xnnpack_float_table_on_ties():
    """The optimized int8/uint8 SOFTMAX (not delegated to XNNPACK either) is a float32 exp table
    (Form.SOFTMAX_FLOAT_TABLE): on rows where it and the fixed-point reference differ, each path is
    bit-exact with its own profile (the reference path with the reference)."""
    from refnet.forms import Form

    for content, xv in softmax_tie_cases(8, Form.SOFTMAX_FLOAT_TABLE):
        for path in ("reference", "optimized", "xnnpack"):
            assert_bit_exact(content, [xv], path=path)


def test_kernel_equals_element_by_element():
    """The op's 8-bit path (kernels/softmax.pyx, reading the 256 distances' exponentials) against the
    element-by-element definition, on generated rows: ties, constant rows, wide and tiny scales,
    every output type, and the rows whose sums LiteRT aborts on."""
    from refnet.ops import softmax as S
    from refnet.fixedpoint import quantize_multiplier
    rng = np.random.default_rng(7)
    for trial in range(240):
        scale = float(np.exp(rng.uniform(np.log(1e-5), np.log(4.0))))
        dtype = (np.int8, np.uint8, np.int16)[trial % 3]
        plan = S.quantized_softmax_plan(*quantize_multiplier(min(scale * 2 ** 26, S.MAX_REAL_MULTIPLIER)), dtype)
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 1300)))
        x = rng.integers(-128, 128, shape).astype(np.int8) if trial % 4 < 2 else \
            rng.integers(0, 256, shape).astype(np.uint8)
        if trial % 5 == 0:
            x[0, :] = x[0, 0]  # a constant row: every element at the maximum
        results = []
        for kernel in (S.softmax_quantized, S.softmax_quantized_kernel):
            try:
                results.append(kernel(x, plan, dtype, OpExecutionError))
            except OpExecutionError as e:
                results.append(str(e))
        expected, got = results
        if isinstance(expected, str):
            assert got == expected
        else:
            assert same_bits(got, expected), (trial, scale, shape)


def test_float_softmax_kernel_matches_numpy_definition():
    """kernels/softmax.pyx softmax_f against the NumPy definition, bit for bit: rows with NaN
    (payloads), infinities, signed zeros, huge and tiny values, one element, both beta signs,
    the division and the reciprocal form.  The kernel itself must agree wherever it reports no
    NaN output (it reports every one: then the dispatcher takes the NumPy definition)."""
    from refnet import _kernels_softmax
    from refnet.ops.softmax import softmax_float, softmax_float_numpy

    rng = np.random.default_rng(53)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 3e38, -3e38, 1e-45, 88.7, -103.9],
                        np.float32)
    payload = np.array([0x7FA00001, 0xFFC00123], np.uint32).view(np.float32)  # signalling, quiet
    for case in range(400):
        n = int(rng.choice([1, 2, 7, 16, 1001]))
        rows = int(rng.integers(1, 4))
        x = (rng.standard_normal((rows, n)) * rng.choice([0.1, 1.0, 30.0, 1e4])).astype(np.float32)
        if case % 3 == 0:
            k = int(rng.integers(1, n + 1))
            x.reshape(-1)[rng.integers(0, x.size, k)] = rng.choice(np.concatenate([specials, payload]), k)
        beta = float(np.float32(rng.choice([1.0, 0.5, -1.0, 2.5, 0.0, 1e-3])))
        for reciprocal in (False, True):
            want = softmax_float_numpy(x, beta, reciprocal)
            assert same_bits(softmax_float(x, beta, reciprocal), want), (case, n, beta, reciprocal)
            raw = np.empty_like(x)
            if not _kernels_softmax.softmax_f(x, np.float32(beta), reciprocal, raw):
                assert not np.isnan(want).any() and same_bits(raw, want), (case, n, beta, reciprocal)
            else:
                assert np.isnan(raw).any()
