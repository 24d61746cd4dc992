"""Measure which arithmetic each LiteRT CPU path uses, op by op, in isolation.

For every op of the real uint8 models and the generated int8 models, each LiteRT path
(reference = BUILTIN_REF, optimized = BUILTIN_WITHOUT_DEFAULT_DELEGATES, xnnpack = BUILTIN) is
run with all tensors preserved. The op's own input tensors *from that path* are taken, the
exact integer intermediates (int32 accumulators, sums, ...) are recomputed in NumPy, and every
candidate arithmetic is applied. A candidate "matches" a path when it reproduces the path's
output bits with 0 mismatches.

    python tools/measure_profiles.py [--quick] [--images N] [--ops CONV_2D,MEAN,...]

Prints a table: op x dtype x path -> the candidates with 0 mismatches, and for every candidate
its mismatch count. This file is the measurement behind refnet/profile.py's OPTIMIZED and
XNNPACK profiles.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import refnet  # noqa: E402
from refnet import fixedpoint  # noqa: E402
from refnet.forms import Form  # noqa: E402
from refnet.images import image_input  # noqa: E402
from refnet.litert import run_litert  # noqa: E402
from refnet.ops import round_half_away  # noqa: E402
from refnet.verify import run_op_isolated  # noqa: E402

SHARED = Path("/work/shared")
REAL_MODELS = ["mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_128_quant.tflite",
               "deeplabv3_mnv2_dm05_pascal_quant.tflite"]
INT8_FAMILIES = ["v2", "v3_large", "v3_small", "edgetpu"]
IMAGES = ["cat.bmp", "grace_hopper.bmp", "bird.bmp", "parrot.jpg"]
PATHS = ("reference", "optimized", "xnnpack")

f32 = np.float32


# ------------------------------------------------------------------------------------------
# models and LiteRT runs

def model_list(quick: bool = False) -> list[tuple[str, Path]]:
    out = [(name.replace(".tflite", ""), SHARED / "models" / name) for name in REAL_MODELS]
    from tools import model_factory

    for fam in INT8_FAMILIES:
        p = model_factory.model_path(fam, "int8", resolution=96)
        if not p.exists() and not quick:
            p = model_factory.get_model(fam, "int8", resolution=96)
        if p.exists():
            out.append((f"{fam}_int8_r96", p))
    return out


def interpreter(content: bytes):
    it = refnet.Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def inputs_for(it, image: str) -> list:
    d = it.get_input_details()[0]
    return [image_input(SHARED / "images" / image, d)]


# ------------------------------------------------------------------------------------------
# candidate arithmetics

def _scales(graph, op, w_index=1, channels=None, axis=0):
    x_t, w_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[w_index]], graph.tensors[op.outputs[0]]
    xs, _ = x_t.quantization.scalar()
    ys, yzp = y_t.quantization.scalar()
    ws = np.broadcast_to(w_t.quantization.scale.astype(np.float32), (channels,))
    return f32(xs), ws, f32(ys), int(yzp)


def fixed_point_forms(acc, mult, shift, zp, lo, hi):
    out = {}
    for name, form in (("double", Form.ROUNDING_DOUBLE), ("single", Form.ROUNDING_SINGLE),
                       ("double_ties_up", Form.ROUNDING_DOUBLE_TIES_UP)):
        try:
            r = fixedpoint.multiply_by_quantized_multiplier(acc, mult, shift, form).astype(np.int64)
        except ValueError:
            continue
        out[name] = np.clip(r + zp, lo, hi)
    return out


def float_scale_variants(xs, ws, ys, uint8_legacy: bool) -> dict[str, np.ndarray]:
    """Ways a runtime may compute the per-channel requantization scale."""
    with np.errstate(all="ignore"):
        v = {
            "f32((xs*ws)/ys)": (xs * ws) / ys,  # XNNPACK: input_scale * kernel_scale / output_scale
            "f32(xs*(ws/ys))": xs * (ws / ys),
            "f32((xs/ys)*ws)": (xs / ys) * ws,
            "f32(double)": (np.float64(xs) * ws.astype(np.float64) / np.float64(ys)).astype(f32),
        }
    if uint8_legacy:
        v["f32(double(f32(xs*ws))/ys)"] = (np.float64(xs * ws) / np.float64(ys)).astype(f32)
    return {k: np.asarray(s, f32) for k, s in v.items()}


def float_forms(acc, scales: dict, zp, lo, hi):
    """fp32 requantization: round(float(acc) * scale) (+ zp), several roundings."""
    out = {}
    facc = acc.astype(f32)
    for sname, s in scales.items():
        prod = facc * s  # float32 multiply
        out[f"fp32 rne {sname}"] = np.clip(np.rint(prod).astype(np.int64) + zp, lo, hi)
        out[f"fp32 half-away {sname}"] = np.clip(round_half_away(prod).astype(np.int64) + zp, lo, hi)
        # magic-bias with the zero point inside the float (qu8 "fp32 magic" variants)
        out[f"fp32 rne(x+zp) {sname}"] = np.clip(np.rint(prod + f32(zp)).astype(np.int64), lo, hi)
    return out


def float64_forms(acc, xs, ws, ys, zp, lo, hi):
    eff = np.float64(xs) * ws.astype(np.float64) / np.float64(ys)
    prod = acc.astype(np.float64) * eff
    return {"float64 half-away": np.clip(round_half_away(prod).astype(np.int64) + zp, lo, hi),
            "float64 rne": np.clip(np.rint(prod).astype(np.int64) + zp, lo, hi)}


def conv_like_candidates(it, op, tensors):
    """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, int8 and uint8."""
    from refnet.ops import conv, depthwise

    ctx = it._contexts[op.index]
    plan = ctx.params
    if getattr(plan, "mode", None) != "quantized":
        return None
    g = it.graph
    x = np.ascontiguousarray(tensors[op.inputs[0]])
    w = np.ascontiguousarray(g.tensors[op.inputs[1]].data)
    bias = None
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = np.ascontiguousarray(g.tensors[op.inputs[2]].data.reshape(-1))
    if op.kind == "CONV_2D":
        acc = conv.int_conv_accumulators(x, w, bias, plan)
    elif op.kind == "DEPTHWISE_CONV_2D":
        acc = depthwise.int_depthwise_accumulators(x, w, bias, plan)
    else:
        from refnet import _kernels_pointwise

        acc = np.empty((plan.batches, plan.units), np.int32)
        _kernels_pointwise.matmul_int(x.reshape(plan.batches, plan.depth), w, bias,
                                      plan.input_offset, plan.filter_offset, acc)
        acc = acc.reshape(plan.out_shape)
    q = plan.quant
    channels = acc.shape[-1]
    acc2 = acc.reshape(-1, channels).astype(np.int64)
    axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
    xs, ws, ys, zp = _scales(g, op, channels=channels, axis=axis)
    legacy = g.tensors[op.inputs[0]].dtype == np.uint8
    cands = fixed_point_forms(acc2, q.multiplier.astype(np.int64), q.shift.astype(np.int64), zp, q.qmin, q.qmax)
    cands.update(float64_forms(acc2, xs, ws, ys, zp, q.qmin, q.qmax))
    cands.update(float_forms(acc2, float_scale_variants(xs, ws, ys, legacy), zp, q.qmin, q.qmax))
    return {k: v.reshape(acc.shape) for k, v in cands.items()}


def reference_candidate(it, op, tensors):
    """Any op: refnet's reference arithmetic on the path's own inputs."""
    from refnet.verify import run_op_isolated

    try:
        outs = run_op_isolated(it, op.index, tensors)
    except Exception:
        return None
    return {"reference (refnet)": outs[0]}


def _qparams(t):
    s, zp = t.quantization.scalar()
    return f32(s), int(zp)


def mean_candidates(it, op, tensors):
    g = it.graph
    x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if x_t.dtype not in (np.int8, np.uint8):
        return reference_candidate(it, op, tensors)
    x = tensors[op.inputs[0]].astype(np.int64)
    axes = tuple(sorted(int(a) % x.ndim for a in np.asarray(g.tensors[op.inputs[1]].data).reshape(-1)))
    count = int(np.prod([x.shape[a] for a in axes]))
    total = x.sum(axis=axes)  # raw quantized values, exact
    xs, xzp = _qparams(x_t)
    ys, yzp = _qparams(y_t)
    info = np.iinfo(x_t.dtype)
    lo, hi = int(info.min), int(info.max)
    out = dict(reference_candidate(it, op, tensors) or {})
    # LiteRT optimized_integer_ops::Mean (4-D, keep_dims, axes {1, 2}), x86 scalar loop:
    with np.errstate(all="ignore"):
        temp = f32(f32(f32(xzp) * xs) / ys)
        temp = f32(temp + f32(0.5)) if temp > 0 else f32(temp - f32(0.5))
        bias = yzp - int(temp)  # static_cast<int32_t>: truncation
        real = f32(xs / f32(f32(count) * ys))
    m, sh = fixedpoint.quantize_multiplier(float(real))
    for name, form in (("double", Form.ROUNDING_DOUBLE), ("double_ties_up", Form.ROUNDING_DOUBLE_TIES_UP),
                       ("single", Form.ROUNDING_SINGLE)):
        r = fixedpoint.multiply_by_quantized_multiplier(total, m, sh, form).astype(np.int64)
        out[f"opt4d raw-sum MBQM({name}) + bias"] = np.clip(r + bias, lo, hi)
    if x.ndim == 4 and axes == (1, 2):
        from refnet import requantize

        out["opt4d 16-channel blocks ties up, tail ties away"] = requantize.mean_optimized_4d(
            tensors[op.inputs[0]], xs, xzp, ys, yzp).astype(np.int64)
    # XNNPACK reduce: raw int32 sum, then the int32 -> q8 convert: nearbyint(sum * s + zp')
    with np.errstate(all="ignore"):
        for sname, s in (("f32(f32(xs/ys)*f32(1/n))", f32(f32(xs / ys) * f32(f32(1) / f32(count)))),
                         ("f32(xs/(n*ys))", f32(xs / f32(f32(count) * ys))),
                         ("f32(f32(xs/ys)/n)", f32(f32(xs / ys) / f32(count)))):
            zpf = f32(f32(yzp) - f32(f32(count * xzp) * s))
            v = f32(total.astype(f32) * s) + zpf
            out[f"xnn cvt rne(sum*s+zp') {sname}"] = np.clip(np.rint(v), lo, hi).astype(np.int64)
            v = (total.astype(np.float64) * np.float64(s) + np.float64(zpf)).astype(f32)
            out[f"xnn cvt fma {sname}"] = np.clip(np.rint(v), lo, hi).astype(np.int64)
            c = (total - count * xzp).astype(f32) * s
            out[f"xnn rne((sum-n*xzp)*s)+zp {sname}"] = np.clip(np.rint(c).astype(np.int64) + yzp, lo, hi)
            out[f"xnn rne((sum-n*xzp)*s+zp) {sname}"] = np.clip(np.rint(c + f32(yzp)), lo, hi).astype(np.int64)
    return {k: np.asarray(v).reshape(y_t.shape) for k, v in out.items()}


def quantize_candidates(it, op, tensors):
    g = it.graph
    x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    x = tensors[op.inputs[0]]
    ys, yzp = _qparams(y_t)
    info = np.iinfo(y_t.dtype)
    lo, hi = int(info.min), int(info.max)
    out = dict(reference_candidate(it, op, tensors) or {})
    with np.errstate(all="ignore"):
        if x_t.dtype == np.float32:
            out["half-away(f32 x / f32 s)"] = np.clip(round_half_away(x / ys).astype(np.int64) + yzp, lo, hi)
            out["half-away(double x / double s)"] = np.clip(
                round_half_away(x.astype(np.float64) / np.float64(ys)).astype(np.int64) + yzp, lo, hi)
            inv = f32(f32(1) / ys)
            out["rne(x * f32(1/s)) + zp"] = np.clip(np.rint(x * inv).astype(np.int64) + yzp, lo, hi)
            out["rne(clamp(x * f32(1/s) + zp))"] = np.rint(np.clip(x * inv + f32(yzp), lo, hi)).astype(np.int64)
            out["rne(x / s) + zp"] = np.clip(np.rint(x / ys).astype(np.int64) + yzp, lo, hi)
        else:
            xs, xzp = _qparams(x_t)
            m = int(np.rint(f32(256) * f32(xs / ys)))  # XNNPACK qu8/qs8 vcvt: lrintf(256 * s)
            v = ((yzp << 8) - m * xzp + 128 + x.astype(np.int64) * m) >> 8
            out["xnn vcvt lrintf(256*f32(xs/ys)), ties up"] = np.clip(v, lo, hi)
    return {k: np.asarray(v).reshape(y_t.shape) for k, v in out.items()}


def mul_candidates(it, op, tensors):
    g = it.graph
    a_t, b_t, y_t = (g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]])
    if y_t.dtype not in (np.int8, np.uint8):
        return reference_candidate(it, op, tensors)
    a = tensors[op.inputs[0]] if not a_t.is_constant else a_t.data
    b = tensors[op.inputs[1]] if not b_t.is_constant else b_t.data
    (sa, za), (sb, zb), (sy, zy) = _qparams(a_t), _qparams(b_t), _qparams(y_t)
    from refnet.ops import quantized_activation_range, OpContext

    lo, hi = quantized_activation_range(OpContext(op, g, it.profile), y_t)
    prod = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
    out = dict(reference_candidate(it, op, tensors) or {})
    with np.errstate(all="ignore"):
        for sname, s in (("f32(f32(sa*sb)/sy)", f32(f32(sa * sb) / sy)), ("f32(sa*f32(sb/sy))", f32(sa * f32(sb / sy))),
                         ("f32(f32(sa/sy)*sb)", f32(f32(sa / sy) * sb))):
            v = prod.astype(f32) * s
            out[f"fp32 rne(p*s)+zp {sname}"] = np.clip(np.rint(v).astype(np.int64) + zy, lo, hi)
            out[f"fp32 rne(clamp(p*s+zp)) {sname}"] = np.rint(np.clip(v + f32(zy), lo, hi)).astype(np.int64)
            out[f"fp32 half-away(p*s)+zp {sname}"] = np.clip(round_half_away(v).astype(np.int64) + zy, lo, hi)
    m, sh = fixedpoint.quantize_multiplier(float(f32(f32(sa * sb) / sy)))
    for name, form in (("double_ties_up", Form.ROUNDING_DOUBLE_TIES_UP), ("single", Form.ROUNDING_SINGLE)):
        r = fixedpoint.multiply_by_quantized_multiplier(prod, m, sh, form).astype(np.int64)
        out[f"MBQM({name})"] = np.clip(r + zy, lo, hi)
    return {k: np.asarray(v).reshape(y_t.shape) for k, v in out.items()}


def add_candidates(it, op, tensors):
    from refnet import requantize
    from refnet.ops import quantized_activation_range, OpContext

    g = it.graph
    a_t, b_t, y_t = (g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]])
    out = dict(reference_candidate(it, op, tensors) or {})
    if y_t.dtype not in (np.int8, np.uint8):
        return out
    a = tensors[op.inputs[0]] if not a_t.is_constant else a_t.data
    b = tensors[op.inputs[1]] if not b_t.is_constant else b_t.data
    (sa, za), (sb, zb), (sy, zy) = _qparams(a_t), _qparams(b_t), _qparams(y_t)
    lo, hi = quantized_activation_range(OpContext(op, g, it.profile), y_t)
    params = requantize.add_xnnpack_params(sa, sb, sy)
    out["xnn vadd (21-bit multipliers, shift ties up)"] = np.clip(
        requantize.add_xnnpack(a, za, b, zb, params, zy), lo, hi)
    return out


CANDIDATES = {
    "ADD": add_candidates,
    "CONV_2D": conv_like_candidates,
    "DEPTHWISE_CONV_2D": conv_like_candidates,
    "FULLY_CONNECTED": conv_like_candidates,
    "MEAN": mean_candidates,
    "QUANTIZE": quantize_candidates,
    "MUL": mul_candidates,
}


def op_key(g, op) -> tuple[str, str]:
    kind = op.kind
    if kind == "CONV_2D":
        w = g.tensors[op.inputs[1]]
        kind += " 1x1" if w.shape[1] == w.shape[2] == 1 else f" {w.shape[1]}x{w.shape[2]}"
    if kind == "MEAN":
        kind += " keep_dims" if op.options.get("keep_dims", False) else ""
    return kind, g.tensors[op.inputs[0]].dtype.name


# ------------------------------------------------------------------------------------------

def measure(models, images, ops_filter=None, paths=PATHS):
    """{(op key, path): {candidate: [mismatches, elements, ops, ops_equal]}} over everything."""
    table: dict = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0, 0, 0]))
    seen_models = collections.defaultdict(set)
    for mname, mpath in models:
        content = Path(mpath).read_bytes()
        it = interpreter(content)
        profiled = {}
        for path in paths:
            profiled[path] = refnet.Interpreter(model_content=content, profile=path)
            profiled[path].allocate_tensors()
        g = it.graph
        for image in images:
            x = inputs_for(it, image)
            for path in paths:
                theirs = run_litert(content, x, path=path)
                for op in g.ops:
                    if ops_filter and op.kind not in ops_filter:
                        continue
                    fn = CANDIDATES.get(op.kind, reference_candidate)
                    if any(theirs.get(t) is None for t in op.inputs if t >= 0 and not g.tensors[t].is_constant):
                        continue
                    cands = dict(fn(it, op, theirs) or {})
                    try:  # what refnet's profile for this path computes
                        cands[f"REFNET PROFILE '{path}'"] = run_op_isolated(profiled[path], op.index, theirs)[0]
                    except Exception as e:  # noqa: BLE001 - reported as a candidate that failed
                        print(f"  refnet profile {path} failed on op {op.index} {op.kind}: {e}")
                    key = op_key(g, op)
                    seen_models[key].add(mname)
                    want = theirs[op.outputs[0]]
                    for cname, got in cands.items():
                        got = np.asarray(got).reshape(want.shape)
                        if want.dtype.kind == "f":
                            same = (got == want) | (np.isnan(got) & np.isnan(want))
                        else:
                            same = got.astype(np.int64) == want.astype(np.int64)
                        mism = int(want.size - np.count_nonzero(same))
                        row = table[(key, path)][cname]
                        row[0] += mism
                        row[1] += want.size
                        row[2] += 1
                        row[3] += mism == 0
    return table, seen_models


def print_table(table, seen_models, verbose=False):
    for (key, path) in sorted(table, key=lambda k: (k[0], PATHS.index(k[1]))):
        rows = table[(key, path)]
        exact = [c for c, r in rows.items() if r[0] == 0]
        n_el = next(iter(rows.values()))[1]
        n_ops = next(iter(rows.values()))[2]
        print(f"{key[0]:22s} {key[1]:6s} {path:10s} ops={n_ops:4d} elems={n_el:9d}  "
              f"exact: {', '.join(exact) if exact else 'NONE'}")
        if verbose or not exact:
            for c, r in sorted(rows.items(), key=lambda kv: kv[1][0])[:8]:
                print(f"      {r[0]:9d} off  ({r[3]}/{r[2]} ops exact)  {c}")
    print("models per op:", {f"{k[0]} {k[1]}": sorted(v) for k, v in seen_models.items()})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only models already on disk, 1 image")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--ops", default="", help="comma-separated op kinds")
    ap.add_argument("--models", default="", help="comma-separated substrings of model names")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    models = model_list(a.quick)
    if a.models:
        models = [m for m in models if any(s in m[0] for s in a.models.split(","))]
    images = IMAGES[: 1 if a.quick else a.images]
    table, seen = measure(models, images, set(filter(None, a.ops.split(","))) or None)
    print_table(table, seen, a.verbose)


if __name__ == "__main__":
    main()
