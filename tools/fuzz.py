"""Fuzz refnet with mutants of real and generated .tflite models.

Every mutant runs in a worker subprocess (a pool of long-lived workers, restarted after a crash
or a hang) under an address-space limit (RLIMIT_AS). A mutant's outcome is one of

  ran        the model ran to completion (reader, allocate_tensors, set_tensor, invoke, get_tensor)
  typed      refnet raised a refnet.RefnetError subclass (the class is counted too)
  crash      the worker died: killed by a signal (SIGSEGV, SIGABRT, ...) or exited by itself
  hang       no answer within --timeout seconds (the worker is killed)
  memory     a MemoryError that is not refnet's MemoryLimitError (also when wrapped in a typed
             error): refnet allocated beyond the address-space limit instead of refusing
  untyped    any other exception escaped refnet

The last four are problems; the exit code is 1 if there is any. Mutations (chosen per mutant,
reproducibly from --seed and the mutant's index):

  bitflip    1-4 random bits flipped
  overwrite  an aligned 4-byte word set to an extreme value (0, -1, INT_MIN, INT_MAX, 2**31, ...)
  truncate   the file cut short
  field      a schema field (tensor shape/type/buffer, quantization scale/zero point/axis, op
             opcode/inputs/outputs/options, vector lengths and offsets, ...) set to a hostile value

All byte-level mutations aim at the tables (90% of them hit bytes outside the constant buffers):
the tables sit at the start of a file written by refnet's writer and at the end of one from
LiteRT's converter, so the target region is computed from the parsed file, not assumed.

    python -m tools.fuzz --count 10000 --seed 0 [--models real factory mini ...] [--jobs 2]
    python -m tools.fuzz --run FILE          # run one (saved) mutant in-process, with traceback
    python -m tools.fuzz --seed 0 --index 123 --save FILE   # regenerate mutant 123 of a campaign

Models (--models): paths to .tflite files and the groups `real` (../shared/models/*.tflite),
`factory` (tools.model_factory models at resolution 96, taken from the cache when present) and
`mini` (small MobileNet-like chains of CONV_2D, DEPTHWISE_CONV_2D, pointwise CONV_2D, HARD_SWISH,
ADD, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED and SOFTMAX, in float32, int8 and uint8, written
here with refnet.tflite_writer). Crashers, hangs, memory and untyped outcomes are saved to --out
with a reproduction command.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("REFNET_SHARED", REPO.parent / "shared")) / "models"
DEFAULT_OUT = REPO / ".cache" / "fuzz"
MUTATIONS = ("bitflip", "overwrite", "truncate", "field")
PROBLEMS = ("crash", "hang", "memory", "untyped")
OUTCOMES = ("ran", "typed") + PROBLEMS
GIB = 1 << 30
# refnet's memory guard in the workers; the address-space limit sits well above it, so a model
# the guard admits fits, and one it should have refused shows up as a MemoryError.
WORKER_MEMORY_LIMIT = 1 * GIB
FACTORY_MODELS = (("v2", "int8"), ("v2", "float32"), ("v3_small", "uint8_io"),
                  ("v3_large", "int8_io"), ("v3_large", "float16"), ("edgetpu", "int8"),
                  ("v3_small_minimalistic", "float32"), ("v2", "dynamic"))


# =============================================================================================
# Seed models
# =============================================================================================

def _mini_model(dtype) -> bytes:
    """A MobileNet in miniature: conv 3x3/2 -> depthwise 3x3 -> pointwise conv -> hard-swish
    -> residual ADD -> average pool -> reshape -> fully connected -> softmax."""
    from refnet.tflite_writer import ModelBuilder

    rng = np.random.default_rng(7)
    dtype = np.dtype(dtype)
    quant = dtype != np.float32
    mb = ModelBuilder()

    def q(scale, zp=None):
        if not quant:
            return {}
        if zp is None:
            zp = 0 if dtype == np.int8 else 128
        return {"scale": scale, "zero_point": zp}

    def weights(name, shape, axis):
        if not quant:
            return mb.tensor(name, shape, np.float32, data=rng.standard_normal(shape) * 0.3)
        if dtype == np.uint8:
            return mb.tensor(name, shape, np.uint8, data=rng.integers(0, 256, shape), scale=0.02,
                             zero_point=127)
        n = shape[axis]
        return mb.tensor(name, shape, np.int8, data=rng.integers(-127, 128, shape),
                         scale=rng.uniform(0.005, 0.02, n).astype(np.float32), zero_point=0, axis=axis)

    def bias(name, n, in_scale, w_t):
        if not quant:
            return mb.tensor(name, (n,), np.float32, data=rng.standard_normal(n) * 0.1)
        w_scale = mb.tensors[w_t].quantization.scale
        return mb.tensor(name, (n,), np.int32, data=rng.integers(-300, 300, n),
                         scale=(np.float32(in_scale) * w_scale).astype(np.float32), zero_point=0)

    s_in, s_act = 0.02, 0.05
    x = mb.input("input", (1, 12, 12, 3), dtype, **q(s_in))
    w1 = weights("conv1/w", (8, 3, 3, 3), 0)
    b1 = bias("conv1/b", 8, s_in, w1)
    a1 = mb.tensor("conv1", (1, 6, 6, 8), dtype, **q(s_act))
    mb.op("CONV_2D", [x, w1, b1], [a1], padding="SAME", stride_h=2, stride_w=2,
          fused_activation_function="RELU6")
    w2 = weights("dw/w", (1, 3, 3, 8), 3)
    b2 = bias("dw/b", 8, s_act, w2)
    a2 = mb.tensor("dw", (1, 6, 6, 8), dtype, **q(s_act))
    mb.op("DEPTHWISE_CONV_2D", [a1, w2, b2], [a2], padding="SAME", stride_h=1, stride_w=1,
          depth_multiplier=1, fused_activation_function="RELU6", version=2 if quant else 1)
    w3 = weights("pw/w", (8, 1, 1, 8), 0)
    b3 = bias("pw/b", 8, s_act, w3)
    a3 = mb.tensor("pw", (1, 6, 6, 8), dtype, **q(s_act))
    mb.op("CONV_2D", [a2, w3, b3], [a3], padding="VALID", stride_h=1, stride_w=1,
          fused_activation_function="NONE")
    last = a3
    if dtype != np.uint8:
        a4 = mb.tensor("hswish", (1, 6, 6, 8), dtype, **q(s_act))
        mb.op("HARD_SWISH", [a3], [a4])
        last = a4
    a5 = mb.tensor("add", (1, 6, 6, 8), dtype, **q(0.08))
    mb.op("ADD", [last, a1], [a5], fused_activation_function="NONE")
    a6 = mb.tensor("pool", (1, 1, 1, 8), dtype, **q(0.08))
    mb.op("AVERAGE_POOL_2D", [a5], [a6], padding="VALID", stride_h=6, stride_w=6, filter_height=6,
          filter_width=6, fused_activation_function="NONE")
    shape = mb.tensor("shape", (2,), np.int32, data=np.array([1, 8]))
    a7 = mb.tensor("flat", (1, 8), dtype, **q(0.08))
    mb.op("RESHAPE", [a6, shape], [a7], new_shape=[1, 8])
    w8 = weights("fc/w", (5, 8), 0)
    if quant and dtype == np.int8:  # FULLY_CONNECTED int8 takes per-tensor weights
        mb.tensors[w8].quantization.scale = mb.tensors[w8].quantization.scale[:1].copy()
        mb.tensors[w8].quantization.zero_point = mb.tensors[w8].quantization.zero_point[:1].copy()
    b8 = bias("fc/b", 5, 0.08, w8)
    a8 = mb.tensor("logits", (1, 5), dtype, **q(0.1))
    mb.op("FULLY_CONNECTED", [a7, w8, b8], [a8], fused_activation_function="NONE")
    y = mb.tensor("probs", (1, 5), dtype,
                  **(q(1 / 256, -128 if dtype == np.int8 else 0) if quant else {}))
    mb.op("SOFTMAX", [a8], [y], beta=1.0)
    mb.outputs.append(y)
    return mb.build()


def _factory_path(family: str, kind: str) -> Path | None:
    """The cached factory model (any factory version); None when nothing is cached."""
    try:
        from tools import model_factory
        path = model_factory.model_path(family, kind, 96)
        if path.exists():
            return path
        cache = model_factory.cache_dir()
    except Exception:
        cache = REPO / ".cache" / "models"
    alpha = {"v2": "0.35", "v3_large": "0.35"}.get(family, "0.75")
    found = sorted(cache.glob(f"{family}_a{alpha}_r96_s0_{kind}_*.tflite"),
                   key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def load_seeds(specs: list[str]) -> dict[str, bytes]:
    """name -> bytes of every seed model the --models specs name (read once, up front)."""
    seeds: dict[str, bytes] = {}
    for spec in specs:
        if spec == "real":
            for p in sorted(SHARED_MODELS.glob("*.tflite")):
                seeds[p.name] = p.read_bytes()
        elif spec == "factory":
            for family, kind in FACTORY_MODELS:
                p = _factory_path(family, kind)
                if p is not None:
                    seeds[f"factory:{family}:{kind}"] = p.read_bytes()
        elif spec.startswith("factory:"):
            _, family, kind = spec.split(":")
            p = _factory_path(family, kind)
            if p is None:
                from tools.model_factory import get_model
                p = get_model(family, kind, 96)
            seeds[spec] = p.read_bytes()
        elif spec == "mini":
            for dt in ("float32", "int8", "uint8"):
                seeds[f"mini:{dt}"] = _mini_model(dt)
        elif spec.startswith("mini:"):
            seeds[spec] = _mini_model(spec.split(":")[1])
        else:
            p = Path(spec)
            seeds[p.name] = p.read_bytes()
    if not seeds:
        raise SystemExit(f"no seed model found for {specs}")
    return seeds


# =============================================================================================
# Where things are in a .tflite: the table region and the schema fields
# =============================================================================================

@dataclass
class Site:
    pos: int
    width: int
    kind: str  # i32 u32 f32 i64 u8 uoffset len opt u64
    label: str


@dataclass
class Layout:
    size: int
    buffer_ranges: list = field(default_factory=list)  # (start, end) of constant data
    table_words: np.ndarray | None = None  # 4-aligned positions outside the buffers
    table_bytes: np.ndarray | None = None
    sites: list = field(default_factory=list)
    vectors: dict = field(default_factory=dict)  # vector label -> its element sites
    vector_labels: list = field(default_factory=list)


def analyse(data: bytes) -> Layout:
    """Buffer data ranges, table positions and schema field sites of a (valid) .tflite."""
    import tflite

    lay = Layout(size=len(data))
    sites = lay.sites
    m = tflite.Model.GetRootAsModel(data, 0)

    def scalar(tab, slot, width, kind, label):
        o = tab.Offset(slot)
        if o:
            sites.append(Site(tab.Pos + o, width, kind, label))

    def vector(tab, slot, width, kind, label, limit=24):
        o = tab.Offset(slot)
        if not o:
            return None, 0
        start, n = tab.Vector(o), tab.VectorLen(o)
        sites.append(Site(tab.Pos + o, 4, "uoffset", f"{label}.offset"))
        sites.append(Site(start - 4, 4, "len", f"{label}.length"))
        picks = list(range(min(n, limit))) + ([n - 1] if n > limit else [])
        for k in picks:
            sites.append(Site(start + k * width, width, kind, f"{label}[{k}]"))
        return start, n

    def table(tab, label):
        """Every field of a table we have no schema for (builtin options): width from the gaps."""
        vt = tab.Pos - struct.unpack_from("<i", data, tab.Pos)[0]
        vt_size = struct.unpack_from("<H", data, vt)[0]
        offs = sorted({struct.unpack_from("<H", data, vt + 4 + 2 * k)[0]
                       for k in range((vt_size - 4) // 2)} - {0})
        for a, b in zip(offs, offs[1:] + [offs[-1] + 4] if offs else []):
            sites.append(Site(tab.Pos + a, max(1, min(4, b - a)), "opt", f"{label}+{a}"))

    for k in range(m.BuffersLength()):
        buf = m.Buffers(k)
        o = buf._tab.Offset(4)
        if o and buf.DataLength():
            start = buf._tab.Vector(o)
            lay.buffer_ranges.append((start, start + buf.DataLength()))
            if k % 7 == 1:
                sites.append(Site(start - 4, 4, "len", f"buffer[{k}].data.length"))
        scalar(buf._tab, 6, 8, "u64", f"buffer[{k}].offset")
        scalar(buf._tab, 8, 8, "u64", f"buffer[{k}].size")
    vector(m._tab, 12, 4, "uoffset", "model.buffers", limit=4)
    vector(m._tab, 6, 4, "uoffset", "model.operator_codes", limit=4)
    vector(m._tab, 8, 4, "uoffset", "model.subgraphs", limit=2)
    scalar(m._tab, 4, 4, "u32", "model.version")
    for k in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(k)
        scalar(oc._tab, 4, 1, "u8", f"opcode[{k}].deprecated_builtin_code")
        scalar(oc._tab, 10, 4, "i32", f"opcode[{k}].builtin_code")
        scalar(oc._tab, 8, 4, "i32", f"opcode[{k}].version")
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        vector(sg._tab, 6, 4, "i32", f"subgraph[{s}].inputs")
        vector(sg._tab, 8, 4, "i32", f"subgraph[{s}].outputs")
        vector(sg._tab, 4, 4, "uoffset", f"subgraph[{s}].tensors", limit=4)
        vector(sg._tab, 10, 4, "uoffset", f"subgraph[{s}].operators", limit=4)
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            lbl = f"tensor[{i}]"
            vector(t._tab, 4, 4, "i32", f"{lbl}.shape")
            vector(t._tab, 18, 4, "i32", f"{lbl}.shape_signature")
            scalar(t._tab, 6, 1, "u8", f"{lbl}.type")
            scalar(t._tab, 8, 4, "u32", f"{lbl}.buffer")
            scalar(t._tab, 14, 1, "u8", f"{lbl}.is_variable")
            o = t._tab.Offset(12)
            if o:
                sites.append(Site(t._tab.Pos + o, 4, "uoffset", f"{lbl}.quantization.offset"))
                qp = t.Quantization()
                vector(qp._tab, 8, 4, "f32", f"{lbl}.scale", limit=4)
                vector(qp._tab, 10, 8, "i64", f"{lbl}.zero_point", limit=4)
                vector(qp._tab, 4, 4, "f32", f"{lbl}.min", limit=1)
                vector(qp._tab, 6, 4, "f32", f"{lbl}.max", limit=1)
                scalar(qp._tab, 16, 4, "i32", f"{lbl}.quantized_dimension")
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            lbl = f"op[{k}]"
            scalar(op._tab, 4, 4, "u32", f"{lbl}.opcode_index")
            vector(op._tab, 6, 4, "i32", f"{lbl}.inputs")
            vector(op._tab, 8, 4, "i32", f"{lbl}.outputs")
            scalar(op._tab, 10, 1, "u8", f"{lbl}.builtin_options_type")
            o = op._tab.Offset(12)
            if o:
                sites.append(Site(op._tab.Pos + o, 4, "uoffset", f"{lbl}.builtin_options.offset"))
                opts = op.BuiltinOptions()
                if opts is not None:
                    table(opts, f"{lbl}.options")
            vector(op._tab, 14, 1, "u8", f"{lbl}.custom_options", limit=4)

    for site in sites:
        if site.label.endswith("]") and site.kind in ("i32", "f32", "i64"):
            lay.vectors.setdefault(site.label.rsplit("[", 1)[0], []).append(site)
    lay.vector_labels = sorted(lay.vectors)
    in_buffer = np.zeros(len(data), bool)
    for a, b in lay.buffer_ranges:
        in_buffer[a:b] = True
    table_bytes = np.flatnonzero(~in_buffer)
    lay.table_bytes = table_bytes if table_bytes.size else np.arange(len(data))
    words = table_bytes[(table_bytes % 4 == 0) & (table_bytes + 4 <= len(data))]
    lay.table_words = words if words.size else np.arange(0, len(data) - 3, 4)
    return lay


# =============================================================================================
# Mutations
# =============================================================================================

EXTREME_U32 = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0x80000001, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFC, 0x3F800000, 0x7FC00000,
               0x7F800000, 0xFF800000, 0x01000000)


def _interesting(kind: str, orig: bytes, width: int, rng, data_len: int) -> bytes:
    def u(v):
        return int(v).to_bytes(width, "little", signed=False) if width < 8 else \
            (int(v) & (2**64 - 1)).to_bytes(8, "little")

    def s(v):
        v = int(v)
        lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1
        v = min(max(v, lo), hi)
        return v.to_bytes(width, "little", signed=True)

    o = int.from_bytes(orig, "little", signed=True) if orig else 0
    if kind == "f32":
        return struct.pack("<f", float(rng.choice(
            [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 1.2e-38, 3.4e38, -1.0, 1e-12, 1e12,
             struct.unpack("<f", orig)[0] * 2 if len(orig) == 4 else 1.0, 2.0 ** -40, 65536.0])))
    if kind == "i64":
        return s(rng.choice([-129, -128, 127, 128, 255, 256, -1, 2**31, -(2**31) - 1,
                             2**63 - 1, -(2**63), o + 1, o - 1]))
    if kind in ("u8", "opt") and width == 1:
        return u(int(rng.choice([0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 17, 127, 128, 255, (o + 1) & 255,
                                 (o - 1) & 255, int(rng.integers(0, 256))])))
    if kind == "uoffset":
        return u(int(rng.choice([0, 4, 8, 0xFFFFFFF0, 0x7FFFFFFC, data_len, (o + 4) & 0xFFFFFFFF,
                                 (o - 4) & 0xFFFFFFFF, (o + 8) & 0xFFFFFFFF, o ^ 0x80000000,
                                 int(rng.integers(0, max(data_len, 1)))])) & 0xFFFFFFFF)
    if kind == "len":
        return u(int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x40000000, (o + 1) & 0xFFFFFFFF,
                                 (o - 1) & 0xFFFFFFFF, (o * 1000) & 0xFFFFFFFF, data_len,
                                 data_len // 4])))
    if kind == "u64":
        return u(int(rng.choice([0, 1, 2, data_len, data_len - 1, 2**63, 2**64 - 1, 2**32,
                                 o + 1, o - 1])))
    # i32 / u32 / 2- or 4-byte option fields
    return s(rng.choice([0, 1, -1, 2, 3, 4, 6, 7, 255, 256, 65535, 65536, 2**31 - 1, -(2**31),
                         2**24 + 1, o + 1, o - 1, o * 2, -o, int(rng.integers(0, 1000)),
                         int(rng.integers(-5, 200))])) if width > 1 else u(o & 255)


def mutate(data: bytes, lay: Layout, kind: str, rng) -> tuple[bytes, str]:
    """One mutant of `data`; returns (bytes, human-readable description)."""
    buf = bytearray(data)
    n = len(buf)
    aimed = rng.random() < 0.9
    if kind == "bitflip":
        flips = []
        for _ in range(int(rng.integers(1, 5))):
            pos = int(rng.choice(lay.table_bytes)) if aimed else int(rng.integers(0, n))
            bit = int(rng.integers(0, 8))
            buf[pos] ^= 1 << bit
            flips.append(f"{pos}.{bit}")
        return bytes(buf), f"bitflip {','.join(flips)}"
    if kind == "overwrite":
        pos = int(rng.choice(lay.table_words)) if aimed else int(rng.integers(0, n - 3))
        value = int(rng.choice(EXTREME_U32))
        buf[pos:pos + 4] = value.to_bytes(4, "little")
        return bytes(buf), f"overwrite @{pos} = {value:#010x}"
    if kind == "truncate":
        if aimed:
            cut = int(rng.choice(lay.table_bytes))
        else:
            cut = int(rng.choice([0, 4, 7, 8, 16, n // 2, n - 1, n - 4, int(rng.integers(0, n))]))
        return bytes(buf[:max(cut, 0)]), f"truncate to {max(cut, 0)} of {n} bytes"
    if kind == "field":
        if rng.random() < 0.25 and lay.vectors:
            # a whole vector (every dimension of a shape, every input of an op, ...) at once:
            # e.g. a shape of four 65536s, whose element count wraps to 0 in int64
            label = lay.vector_labels[int(rng.integers(0, len(lay.vector_labels)))]
            members = lay.vectors[label]
            new = _interesting(members[0].kind, bytes(buf[members[0].pos:members[0].pos + members[0].width]),
                               members[0].width, rng, n)
            for site in members:
                buf[site.pos:site.pos + site.width] = new
            return bytes(buf), f"field {label}[*] ({len(members)} elements) = {new.hex()}"
        changes = []
        for _ in range(1 if rng.random() < 0.6 else int(rng.integers(2, 4))):
            site = lay.sites[int(rng.integers(0, len(lay.sites)))]
            orig = bytes(buf[site.pos:site.pos + site.width])
            new = _interesting(site.kind, orig, site.width, rng, n)
            buf[site.pos:site.pos + site.width] = new
            changes.append(f"{site.label} @{site.pos}: {orig.hex()} -> {new.hex()}")
        return bytes(buf), "field " + "; ".join(changes)
    raise ValueError(kind)


class Campaign:
    """Deterministic mutant generator: mutant i depends only on (seed, i, seed models)."""

    def __init__(self, seeds: dict[str, bytes], seed: int, kinds=MUTATIONS):
        self.names = list(seeds)
        self.seeds = seeds
        self.seed = seed
        self.kinds = tuple(kinds)
        self.layouts = {name: analyse(data) for name, data in seeds.items()}

    def mutant(self, index: int) -> tuple[str, str, bytes, str]:
        """(model name, mutation kind, bytes, description) of mutant `index`."""
        rng = np.random.default_rng([self.seed, index])
        name = self.names[index % len(self.names)]
        kind = self.kinds[int(rng.integers(0, len(self.kinds)))]
        data, desc = mutate(self.seeds[name], self.layouts[name], kind, rng)
        return name, kind, data, desc


# =============================================================================================
# Running one model (in a worker, or in-process with --run)
# =============================================================================================

def exercise(data: bytes, memory_limit: int = WORKER_MEMORY_LIMIT, seed: int = 0) -> None:
    """Everything a user does with a model: read, allocate, set inputs, invoke, read outputs."""
    import refnet

    it = refnet.Interpreter(model_content=data, memory_limit=memory_limit)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
        if dtype.kind == "f":
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -1000), min(info.max, 1000) + 1, shape).astype(dtype)
        else:
            value = np.zeros(shape, dtype)
        it.set_tensor(d["index"], value)
    it.invoke()
    for d in it.get_output_details():
        it.get_tensor(d["index"])


def _memory_error_in(exc: BaseException) -> bool:
    """A MemoryError that refnet did not raise on purpose, anywhere in the exception chain."""
    from refnet import MemoryLimitError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError) and not isinstance(exc, MemoryLimitError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def wrapped_cause(exc: BaseException) -> str:
    """The class of the non-refnet exception a catch-all wrapper turned into a typed error
    (interpreter: `cannot prepare (...)`, `failed with ...`; reader: `corrupt flatbuffer (...)`),
    or ''. Typed, so not a problem, but each is a check some layer could make explicitly."""
    from refnet import RefnetError

    cause = exc.__cause__
    if cause is not None and not isinstance(cause, RefnetError):
        return type(cause).__name__
    m = re.search(r"corrupt flatbuffer \((\w+):", str(exc))
    return m.group(1) if m else ""


def classify_exception(exc: BaseException) -> tuple[str, str, str]:
    """(outcome, exception class, message) of an exception out of exercise()."""
    from refnet import RefnetError

    cls = type(exc).__name__
    if _memory_error_in(exc):
        return "memory", cls, str(exc)[:500]
    if isinstance(exc, RefnetError):
        inner = wrapped_cause(exc)
        return "typed", cls + (f"({inner})" if inner else ""), str(exc)[:500]
    return "untyped", cls, "".join(traceback.format_exception(exc))[-3000:]


def run_in_process(data: bytes) -> tuple[str, str, str]:
    try:
        exercise(data)
    except BaseException as exc:  # noqa: BLE001 - the point is to classify everything
        if isinstance(exc, KeyboardInterrupt):
            raise
        return classify_exception(exc)
    return "ran", "", ""


def _send(stream, obj) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(blob)) + blob)
    stream.flush()


def _recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    blob = stream.read(size)
    return pickle.loads(blob) if len(blob) == size else None


def worker_main(address_space: int) -> None:
    """Serve mutants on stdin; answer on the original stdout (fd 1 is redirected to stderr so
    nothing refnet prints can corrupt the protocol)."""
    import resource
    import warnings

    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    proto_in = sys.stdin.buffer
    warnings.simplefilter("ignore")
    import refnet  # noqa: F401 - import before the limit, like a user's process would have
    from refnet import ops

    ops.load_all()
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        address_space = 0  # AddressSanitizer reserves terabytes of shadow: no RLIMIT_AS there
    if address_space > 0:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    _send(proto_out, ("ready",))
    while True:
        msg = _recv(proto_in)
        if msg is None:
            return
        index, data = msg
        start = time.monotonic()
        outcome = run_in_process(data)
        _send(proto_out, (index,) + outcome + (time.monotonic() - start,))


class Worker:
    def __init__(self, slot: int, address_space: int, log_dir: Path, env: dict | None = None):
        self.slot = slot
        self.address_space = address_space
        self.log_path = log_dir / f"worker-{slot}.log"
        self.env = env
        self.proc = None
        self.restarts = -1

    def start(self) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in (env.get("PYTHONPATH", ""),) if p] + [str(REPO)])
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.fuzz", "--worker", "--address-space",
             str(self.address_space)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=str(REPO), env=env,
            start_new_session=True)
        self.restarts += 1
        ready = self._read(120)
        if ready != ("ready",):
            raise RuntimeError(f"fuzz worker {self.slot} did not start: {self.stderr_tail()}")

    def _read(self, timeout):
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return "timeout"
        return _recv(self.proc.stdout)

    def stderr_tail(self, size=4000) -> str:
        try:
            self.log.flush()
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - size))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc is not None:
            for s in (self.proc.stdin, self.proc.stdout):
                try:
                    s.close()
                except OSError:
                    pass
            self.log.close()
        self.proc = None

    def run(self, index: int, data: bytes, timeout: float) -> tuple:
        """(outcome, class, message, seconds) of one mutant; restarts the worker if it died."""
        if self.proc is None:
            self.start()
        start = time.monotonic()
        try:
            _send(self.proc.stdin, (index, data))
            reply = self._read(timeout)
        except (BrokenPipeError, OSError):
            reply = None
        elapsed = time.monotonic() - start
        if reply == "timeout":
            tail = self.stderr_tail()
            self.stop()
            return "hang", "timeout", f"no answer after {timeout:.0f} s\n{tail}", elapsed
        if reply is None:
            code = self.proc.wait()
            tail = self.stderr_tail()
            self.stop()
            if code < 0:
                name = signal.Signals(-code).name
                return "crash", name, f"worker killed by {name}\n{tail}", elapsed
            return "crash", f"exit {code}", f"worker exited with status {code}\n{tail}", elapsed
        _, outcome, cls, message, _ = reply
        return outcome, cls, message, elapsed


# =============================================================================================
# Campaign runner and report
# =============================================================================================

@dataclass
class Result:
    index: int
    model: str
    kind: str
    desc: str
    outcome: str
    cls: str
    message: str
    seconds: float


def run_campaign(seeds: dict[str, bytes], count: int, seed: int = 0, jobs: int = 2,
                 timeout: float = 20.0, address_space: int = 4 * GIB, out: Path | None = None,
                 kinds=MUTATIONS, start: int = 0, progress: bool = False, env: dict | None = None,
                 model_args: list[str] | None = None) -> list[Result]:
    campaign = Campaign(seeds, seed, kinds)
    out = Path(out) if out is not None else DEFAULT_OUT / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    lock = threading.Lock()
    next_index = [start]
    stop_at = start + count
    t0 = time.monotonic()
    errors: list[BaseException] = []

    def loop(slot):
        worker = Worker(slot, address_space, out, env)
        try:
            while True:
                with lock:
                    if next_index[0] >= stop_at or errors:
                        return
                    i = next_index[0]
                    next_index[0] += 1
                name, kind, data, desc = campaign.mutant(i)
                outcome, cls, message, secs = worker.run(i, data, timeout)
                r = Result(i, name, kind, desc, outcome, cls, message, secs)
                if outcome in PROBLEMS or (outcome == "typed" and "(" in cls
                                           and not cls.startswith("ModelFormatError")):
                    # problems, and typed errors only a catch-all wrapper made typed (worth an
                    # explicit check in the op or reader): saved with a reproduction command
                    save_finding(out, r, data, seed, model_args)
                with lock:
                    results.append(r)
                    done = len(results)
                    if progress and (done % 250 == 0 or outcome in PROBLEMS):
                        problems = sum(x.outcome in PROBLEMS for x in results)
                        print(f"  {done}/{count} mutants, {problems} problems, "
                              f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        except BaseException as e:  # noqa: BLE001 - surface in the main thread
            errors.append(e)
        finally:
            worker.stop()

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    results.sort(key=lambda r: r.index)
    return results


def save_finding(out: Path, r: Result, data: bytes, seed: int, model_args) -> Path:
    stem = f"{r.outcome if r.outcome in PROBLEMS else 'wrapped'}-{r.index:06d}-{r.kind}"
    path = out / f"{stem}.tflite"
    path.write_bytes(data)
    models = " ".join(model_args) if model_args else "<the same --models>"
    (out / f"{stem}.txt").write_text(
        f"outcome: {r.outcome} ({r.cls})\nmodel: {r.model}\nmutation: {r.desc}\n"
        f"seconds: {r.seconds:.2f}\n\nreproduce (in-process, shows the traceback):\n"
        f"  python -m tools.fuzz --run {path}\n"
        f"regenerate the mutant:\n"
        f"  python -m tools.fuzz --seed {seed} --index {r.index} --models {models} --save {path}\n\n"
        f"{r.message}\n")
    return path


def report(results: list[Result], file=sys.stdout) -> dict:
    """Print outcome tables by mutation kind and by model; return the totals."""
    def table(title, key):
        rows = defaultdict(Counter)
        for r in results:
            rows[key(r)][r.outcome] += 1
        width = max([len(title)] + [len(k) for k in rows]) + 2
        print(f"{title:<{width}}" + "".join(f"{o:>9}" for o in OUTCOMES) + f"{'total':>9}", file=file)
        for k in sorted(rows):
            c = rows[k]
            print(f"{k:<{width}}" + "".join(f"{c[o]:>9}" for o in OUTCOMES)
                  + f"{sum(c.values()):>9}", file=file)
        total = Counter(r.outcome for r in results)
        print(f"{'TOTAL':<{width}}" + "".join(f"{total[o]:>9}" for o in OUTCOMES)
              + f"{len(results):>9}", file=file)
        print(file=file)

    table("mutation", lambda r: r.kind)
    table("model", lambda r: r.model)
    typed = Counter(r.cls.split("(")[0] for r in results if r.outcome == "typed")
    print("typed errors: " + ", ".join(f"{k} {v}" for k, v in typed.most_common()), file=file)
    wrapped = Counter(r.cls for r in results if r.outcome == "typed" and "(" in r.cls)
    if wrapped:
        print("  of which typed by a catch-all wrapper (error class(original exception)): "
              + ", ".join(f"{k} {v}" for k, v in wrapped.most_common()), file=file)
    slowest = max(results, key=lambda r: r.seconds, default=None)
    if slowest is not None:
        print(f"slowest mutant: #{slowest.index} ({slowest.model}, {slowest.desc}) "
              f"{slowest.seconds:.2f} s", file=file)
    totals = Counter(r.outcome for r in results)
    problems = {p: totals[p] for p in PROBLEMS}
    print("problems: " + ", ".join(f"{p} {n}" for p, n in problems.items()), file=file)
    for r in [r for r in results if r.outcome in PROBLEMS][:20]:
        first = r.message.strip().splitlines()[-1] if r.message.strip() else ""
        print(f"  #{r.index} {r.outcome} {r.cls} {r.model} [{r.desc}]: {first[:200]}", file=file)
    return dict(totals)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="index of the first mutant")
    ap.add_argument("--models", nargs="+", default=["real", "factory", "mini"])
    ap.add_argument("--kinds", nargs="+", default=list(MUTATIONS), choices=MUTATIONS)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per mutant")
    ap.add_argument("--address-space", type=int, default=4 * GIB,
                    help="RLIMIT_AS of a worker, bytes (default 4 GiB)")
    ap.add_argument("--out", type=Path, default=None, help="where problems are saved")
    ap.add_argument("--run", type=Path, help="run one .tflite in-process and classify it")
    ap.add_argument("--index", type=int, help="with --save: regenerate this mutant")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        worker_main(args.address_space)
        return 0
    if args.run is not None:
        data = args.run.read_bytes()
        try:
            exercise(data)
        except BaseException as exc:  # noqa: BLE001
            outcome, cls, message = classify_exception(exc)
            traceback.print_exc()
            print(f"\noutcome: {outcome} ({cls})")
            return 1 if outcome in PROBLEMS else 0
        print("outcome: ran")
        return 0
    seeds = load_seeds(args.models)
    if args.index is not None:
        name, kind, data, desc = Campaign(seeds, args.seed, args.kinds).mutant(args.index)
        print(f"mutant {args.index}: {name}, {desc}")
        if args.save:
            args.save.write_bytes(data)
            print(f"saved to {args.save}")
        return 0
    print(f"fuzzing {args.count} mutants (seed {args.seed}) of {len(seeds)} models with "
          f"{args.jobs} workers, {args.timeout:.0f} s timeout, address space "
          f"{args.address_space / GIB:.1f} GiB", file=sys.stderr)
    t0 = time.monotonic()
    results = run_campaign(seeds, args.count, args.seed, args.jobs, args.timeout,
                           args.address_space, args.out, args.kinds, args.start, progress=True,
                           model_args=args.models)
    totals = report(results)
    print(f"{len(results)} mutants in {time.monotonic() - t0:.0f} s")
    out = args.out or DEFAULT_OUT / f"seed{args.seed}"
    if any(totals.get(p) for p in PROBLEMS):
        print(f"problems saved to {out}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
