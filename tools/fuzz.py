"""Fuzz refnet with mutants of .tflite models, checkpoints and images.

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

Formats (--format, several: one campaign each and a table per format at the end):

  tflite        the mutations above, of the --models below
  h5            Keras .h5 (model.save, legacy HDF5)          } exercise: refnet.model_files.
  keras         Keras 3 .keras (zip: config.json +           }   load_model (bounded: refnet's
                model.weights.h5)                            }   own deadline, 5 s in the
  weights-h5    Keras 3 .weights.h5 (save_weights)           }   workers, and memory limit),
  tensorbundle  TF-slim checkpoint (.index + .data-*)        }   then an Interpreter on its
                                                                 graph, one invoke
  image         JPEG, PNG, BMP: refnet.images.load_pixels (resize and center-crop) into a
                small float32 model, one invoke each

  Their mutations: bitflip (1-4 bits), overwrite8 (8 bytes set to an extreme value: HDF5's
  undefined address, 2**63, 2**32, ...), zero64 (64 zeroed bytes), truncate; for .keras also
  member (config.json or model.weights.h5 mutated, then re-zipped with right CRCs: half the
  .keras mutants). 90% of them aim at structure: HDF5 bytes outside the datasets' raw data, the
  whole .index (half the time with its block CRCs recomputed, to reach the SSTable parser).
  Seeds: tools/fuzz_seeds.py (MobileNetV2 0.35 96 and V3-Small minimalistic 0.75 96 from
  keras.applications, seeded random weights), built with TensorFlow once into .cache/fuzz-seeds.

    python -m tools.fuzz --format h5 keras weights-h5 tensorbundle image --count 1000 --seed 0
    python -m tools.fuzz --run DIR/mutant.h5 [--in-process]   # one saved checkpoint mutant

Models (--models): paths to .tflite files and the groups `real` (../shared/models/*.tflite),
`detector` (tools.detector_factory's SSD detectors, when cached),
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
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
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
# refnet.bounded's errors: typed, but each one is the HDF5 library looping or crashing
BOUNDED_ERRORS = ("CheckpointReadTimeout", "CheckpointReaderCrash")
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
        elif spec == "detector":  # the SSD detectors (TFLite_Detection_PostProcess), when cached
            for path in sorted((REPO / ".cache" / "detectors").glob("*/*.tflite")):
                seeds[f"detector:{path.stem}"] = path.read_bytes()
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
    """Deterministic mutant generator: mutant i depends only on (seed, i, seed models).
    `fmt` 'tflite': seeds are .tflite bytes, mutants bytes; other formats (FILE_FORMATS):
    seeds are FileSeeds, mutants dicts of file name -> bytes."""

    def __init__(self, seeds: dict, seed: int, kinds=None, fmt: str = "tflite"):
        self.names = list(seeds)
        self.seeds = seeds
        self.seed = seed
        self.fmt = fmt
        self.kinds = tuple(kinds or mutation_kinds(fmt))
        self.layouts = {name: analyse(data) for name, data in seeds.items()} if fmt == "tflite" else {}

    def mutant(self, index: int) -> tuple[str, str, bytes | dict, str]:
        """(model name, mutation kind, bytes or files, description) of mutant `index`."""
        rng = np.random.default_rng([self.seed, index])
        name = self.names[index % len(self.names)]
        if self.fmt == "keras" and "member" in self.kinds and rng.random() < 0.5:
            kind = "member"  # half the .keras mutants: only these get past the zip's CRCs
        else:
            kind = self.kinds[int(rng.integers(0, len(self.kinds)))]
        if self.fmt == "tflite":
            data, desc = mutate(self.seeds[name], self.layouts[name], kind, rng)
        else:
            data, desc = mutate_files(self.seeds[name], kind, rng)
        return name, kind, data, desc


# =============================================================================================
# Checkpoints and images: seeds, where their structure is, mutations
# =============================================================================================

FILE_FORMATS = {  # format -> seed file suffixes (tools.fuzz_seeds), per model or image
    "h5": (".h5",), "keras": (".keras",), "weights-h5": (".weights.h5",),
    "tensorbundle": (".ckpt.index", ".ckpt.data-00000-of-00001"), "image": (),
}
FORMATS = ("tflite",) + tuple(FILE_FORMATS)
FILE_MUTATIONS = ("bitflip", "overwrite8", "zero64", "truncate")
KERAS_MUTATIONS = FILE_MUTATIONS + ("member",)  # a zip member's bytes mutated, then re-zipped
# 8-byte little-endian values: HDF5's undefined address (all ones), sizes and offsets at the
# edges of the signed and unsigned ranges, small counts
EXTREME_U64 = (0, 1, 2, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000,
               0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFE,
               0x0000000100000001, 0x3FF0000000000000, 0x7FF8000000000000)
# refnet's own deadline in the workers: HDF5 loops become typed errors well before --timeout
WORKER_IMPORT_TIMEOUT = 5


def mutation_kinds(fmt: str) -> tuple[str, ...]:
    return MUTATIONS if fmt == "tflite" else KERAS_MUTATIONS if fmt == "keras" else FILE_MUTATIONS


@dataclass
class FileSeed:
    """A seed of a file format: its files (one, or a TensorBundle's two), the name refnet is
    given (a TensorBundle: the prefix), and per file the byte positions to aim at (structure,
    not tensor data) and how often that file is the one mutated."""
    files: dict  # file name -> bytes
    main: str
    aim: dict = field(default_factory=dict)  # file name -> np.ndarray of positions
    weight: dict = field(default_factory=dict)  # file name -> probability to be the one mutated
    crc_blocks: list = field(default_factory=list)  # a TensorBundle .index's (offset, size) blocks


def _outside(size: int, ranges) -> np.ndarray:
    keep = np.ones(size, bool)
    for a, b in ranges:
        keep[a:b] = False
    where = np.flatnonzero(keep)
    return where if where.size else np.arange(size)


def hdf5_data_ranges(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every contiguous dataset's raw data in an HDF5 file: the rest is the
    superblock, object headers, B-trees, heaps and attributes, the structure to aim at."""
    import io

    import h5py

    ranges = []

    def visit(_, obj):
        if isinstance(obj, h5py.Dataset):
            off = obj.id.get_offset()
            if off is not None:
                ranges.append((off, off + obj.id.get_storage_size()))
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(visit)
    return ranges


def zip_members(data: bytes) -> dict[str, tuple[int, int]]:
    """Member name -> (start, end) of its bytes in a stored (uncompressed) zip, as Keras writes."""
    import io
    import zipfile

    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len
            out[info.filename] = (start, start + info.compress_size)
    return out


def _file_seed(fmt: str, files: dict, main: str) -> FileSeed:
    seed = FileSeed(files, main)
    for name, data in files.items():
        if fmt in ("h5", "weights-h5"):
            seed.aim[name] = _outside(len(data), hdf5_data_ranges(data))
        elif fmt == "keras":  # zip headers, config.json and the weights file's HDF5 structure
            start, end = zip_members(data)["model.weights.h5"]
            inner = hdf5_data_ranges(data[start:end])
            seed.aim[name] = _outside(len(data), [(start + a, start + b) for a, b in inner])
        else:  # a TensorBundle's .index and images are all structure; its data file all data
            seed.aim[name] = np.arange(len(data))
        seed.weight[name] = 0.2 if ".data-" in name else 1.0
        if name.endswith(".index"):
            seed.crc_blocks = sstable_blocks(data)
    total = sum(seed.weight.values())
    seed.weight = {k: v / total for k, v in seed.weight.items()}
    return seed


def load_file_seeds(fmt: str, seed_dir: Path | None = None) -> dict[str, FileSeed]:
    """name -> FileSeed of a checkpoint or image format, from tools.fuzz_seeds (built with
    TensorFlow the first time)."""
    from tools import fuzz_seeds

    seed_dir = fuzz_seeds.ensure_seeds(seed_dir or fuzz_seeds.SEED_DIR)
    seeds = {}
    if fmt == "image":
        for name in fuzz_seeds.IMAGES:
            ext = name.rsplit(".", 1)[1]
            seeds[name] = _file_seed(fmt, {f"mutant.{ext}": (seed_dir / name).read_bytes()},
                                     f"mutant.{ext}")
        return seeds
    for model in fuzz_seeds.MODELS:
        files = {f"mutant{s}": (seed_dir / f"{model}{s}").read_bytes() for s in FILE_FORMATS[fmt]}
        main = "mutant.ckpt" if fmt == "tensorbundle" else next(iter(files))
        seeds[f"{model}{FILE_FORMATS[fmt][0]}"] = _file_seed(fmt, files, main)
    return seeds


def sstable_blocks(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the metaindex, index and data blocks of a sound TensorBundle .index."""
    from refnet.importers import tensorbundle as tb

    footer = data[-tb.FOOTER_SIZE:]
    moff, msize, pos = tb._block_handle(footer, 0, 40)
    ioff, isize, _ = tb._block_handle(footer, pos, 40)
    blocks = [(moff, msize), (ioff, isize)]
    for _, handle in tb._block_entries(data[ioff:ioff + isize], "index block"):
        off, size, _ = tb._block_handle(handle, 0, len(handle))
        blocks.append((off, size))
    return blocks


def refresh_block_crcs(data: bytes, blocks) -> bytes:
    """The seed's blocks' CRC32C trailers recomputed, so a mutation gets past the checksums and
    reaches the SSTable and protobuf parsers."""
    from refnet.importers.tensorbundle import crc32c, mask_crc

    buf = bytearray(data)
    for off, size in blocks:
        if off + size + 5 <= len(buf):
            struct.pack_into("<I", buf, off + size + 1, mask_crc(crc32c(bytes(buf[off:off + size + 1]))))
    return bytes(buf)


def mutate_bytes(data: bytes, aim: np.ndarray, kind: str, rng) -> tuple[bytes, str]:
    """One byte-level mutation of a checkpoint or image file, 90% aimed at its structure."""
    buf = bytearray(data)
    n = len(buf)

    def position(width=1):
        if rng.random() < 0.9:
            return int(aim[int(rng.integers(0, aim.size))])
        return int(rng.integers(0, max(1, n - width + 1)))

    if kind == "bitflip":
        flips = []
        for _ in range(int(rng.integers(1, 5))):
            pos, bit = position(), int(rng.integers(0, 8))
            buf[pos] ^= 1 << bit
            flips.append(f"{pos}.{bit}")
        return bytes(buf), f"bitflip {','.join(flips)}"
    if kind == "overwrite8":
        pos = min(position(8), max(0, n - 8))
        value = int(EXTREME_U64[int(rng.integers(0, len(EXTREME_U64)))])
        buf[pos:pos + 8] = value.to_bytes(8, "little")
        return bytes(buf[:n]), f"overwrite8 @{pos} = {value:#018x}"
    if kind == "zero64":
        pos = min(position(64), max(0, n - 64))
        buf[pos:pos + 64] = bytes(len(buf[pos:pos + 64]))
        return bytes(buf), f"zero64 @{pos}"
    if kind == "truncate":
        cut = position() if rng.random() < 0.8 else int(rng.choice([0, 8, 64, n // 2, n - 1]))
        return bytes(buf[:cut]), f"truncate to {cut} of {n} bytes"
    raise ValueError(kind)


_MEMBER_AIM: dict = {}


def mutate_zip_member(data: bytes, rng) -> tuple[bytes, str]:
    """A .keras archive with config.json or model.weights.h5 mutated and the zip rewritten
    (CRCs right again, so the damage reaches the JSON and HDF5 parsers)."""
    import io
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    member = "config.json" if rng.random() < 0.4 else "model.weights.h5"
    raw = src.read(member)
    if member == "config.json":
        aim = np.arange(len(raw))
    else:  # the seed's member, the same every time: its structure positions computed once
        key = (len(raw), hash(raw))
        if key not in _MEMBER_AIM:
            _MEMBER_AIM[key] = _outside(len(raw), hdf5_data_ranges(raw))
        aim = _MEMBER_AIM[key]
    kind = FILE_MUTATIONS[int(rng.integers(0, len(FILE_MUTATIONS)))]
    new, desc = mutate_bytes(raw, aim, kind, rng)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():  # the seed's timestamps: a mutant is the same bytes every time
            z.writestr(zipfile.ZipInfo(info.filename, date_time=info.date_time),
                       new if info.filename == member else src.read(info.filename))
    return out.getvalue(), f"member {member}: {desc}"


def mutate_files(seed: FileSeed, kind: str, rng) -> tuple[dict, str]:
    names = list(seed.files)
    name = names[int(rng.choice(len(names), p=[seed.weight[k] for k in names]))]
    if kind == "member":
        data, desc = mutate_zip_member(seed.files[name], rng)
    else:
        data, desc = mutate_bytes(seed.files[name], seed.aim[name], kind, rng)
        if name.endswith(".index") and kind != "truncate" and rng.random() < 0.5:
            data, desc = refresh_block_crcs(data, seed.crc_blocks), desc + " (block CRCs recomputed)"
    return {**seed.files, name: data}, (f"{name.split('.', 1)[1]}: " if len(names) > 1 else "") + desc


# =============================================================================================
# Running one model (in a worker, or in-process with --run)
# =============================================================================================

def exercise(data: bytes, memory_limit: int = WORKER_MEMORY_LIMIT, seed: int = 0) -> None:
    """Everything a user does with a model: read, allocate, set inputs, invoke, read outputs."""
    import refnet

    it = refnet.Interpreter(model_content=data, memory_limit=memory_limit)
    _invoke(it, seed)


def _invoke(it, seed: int = 0, pixels=None) -> None:
    """allocate_tensors, inputs (random, or `pixels` through refnet.images), invoke, outputs."""
    from refnet.images import pixels_to_input

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
        if pixels is not None:
            value = pixels_to_input(pixels, d)
        it.set_tensor(d["index"], value)
    it.invoke()
    for d in it.get_output_details():
        it.get_tensor(d["index"])


def main_file(files: dict) -> str:
    """The name refnet is given for a mutant's files: a TensorBundle's prefix, else the file."""
    index = [n for n in files if n.endswith(".index")]
    return index[0][:-len(".index")] if index else next(iter(files))


_IMAGE_MODEL = []


def exercise_files(files: dict, workdir: Path, memory_limit: int = WORKER_MEMORY_LIMIT,
                   bounded: bool = True) -> None:
    """A checkpoint: refnet.model_files.load_model (bounded: refnet's deadline and memory limit,
    as a user gets them) then an Interpreter on its graph, one invoke. An image: load_pixels
    (resized, and center-cropped) into a small float32 model, one invoke each."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.iterdir():
        old.unlink()
    for name, data in files.items():
        (workdir / name).write_bytes(data)
    exercise_path(str(workdir / main_file(files)), memory_limit, bounded)


def exercise_path(path: str, memory_limit: int = WORKER_MEMORY_LIMIT, bounded: bool = True) -> None:
    import refnet
    from refnet.images import load_pixels
    from refnet.model_files import load_model

    if path.endswith((".jpg", ".png", ".bmp")):
        if not _IMAGE_MODEL:
            _IMAGE_MODEL.append(_mini_model("float32"))
        it = refnet.Interpreter(model_content=_IMAGE_MODEL[0], memory_limit=memory_limit)
        _, h, w, _ = (int(v) for v in it.get_input_details()[0]["shape"])
        for preprocess in ("resize", "center-crop"):
            _invoke(it, pixels=load_pixels(path, h, w, preprocess))
        return
    loaded = load_model(path, resolution=96, bounded=bounded)
    _invoke(refnet.Interpreter(graph=loaded.graph, memory_limit=memory_limit))


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


def run_in_process(data, workdir: Path | None = None) -> tuple[str, str, str]:
    """Classify one mutant: .tflite bytes, or a dict of files (written to `workdir`)."""
    try:
        if isinstance(data, dict):
            exercise_files(data, workdir or Path(os.environ.get("TMPDIR", "/tmp")) / f"refnet-fuzz-{os.getpid()}")
        else:
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


def worker_main(address_space: int, workdir: Path) -> None:
    """Serve mutants on stdin; answer on the original stdout (fd 1 is redirected to stderr so
    nothing refnet prints can corrupt the protocol). Checkpoint and image mutants are written
    to `workdir` and read from there."""
    import resource
    import warnings

    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    proto_in = sys.stdin.buffer
    warnings.simplefilter("ignore")
    import h5py  # noqa: F401 - import before the limit, like a user's process would have
    import PIL.Image  # noqa: F401
    import refnet  # noqa: F401
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
        outcome = run_in_process(data, workdir)
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
        env.setdefault("REFNET_IMPORT_TIMEOUT", str(WORKER_IMPORT_TIMEOUT))
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in (env.get("PYTHONPATH", ""),) if p] + [str(REPO)])
        self.log = open(self.log_path, "wb")
        # the worker writes checkpoint and image mutants here: its own, even when two campaigns
        # share --out
        self.workdir = Path(tempfile.mkdtemp(prefix=f"work-{self.slot}-", dir=self.log_path.parent))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.fuzz", "--worker", "--address-space",
             str(self.address_space), "--out", str(self.workdir)],
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
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.proc = None

    def run(self, index: int, data, timeout: float) -> tuple:
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


def run_campaign(seeds: dict, count: int, seed: int = 0, jobs: int = 2,
                 timeout: float = 20.0, address_space: int = 4 * GIB, out: Path | None = None,
                 kinds=None, start: int = 0, progress: bool = False, env: dict | None = None,
                 model_args: list[str] | None = None, fmt: str = "tflite") -> list[Result]:
    """`seeds`: load_seeds(...) for fmt 'tflite', load_file_seeds(fmt) for the others."""
    campaign = Campaign(seeds, seed, kinds, fmt)
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
                if outcome in PROBLEMS or (outcome == "typed" and (
                        "(" in cls and not cls.startswith("ModelFormatError")
                        or cls.startswith(BOUNDED_ERRORS))):
                    # problems; typed errors only a catch-all wrapper made typed (worth an
                    # explicit check in the op or reader); and the reader's C library looping or
                    # crashing (refnet.bounded caught it): saved with a reproduction command
                    save_finding(out, r, data, seed, model_args, fmt)
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


def save_finding(out: Path, r: Result, data, seed: int, model_args, fmt: str = "tflite") -> Path:
    label = (r.outcome if r.outcome in PROBLEMS else
             "bounded" if r.cls.startswith(BOUNDED_ERRORS) else "wrapped")
    stem = f"{label}-{fmt}-{r.index:06d}-{r.kind}"
    if isinstance(data, dict):  # a checkpoint's or image's files, in a directory of their own
        (out / stem).mkdir(exist_ok=True)
        for name, blob in data.items():
            (out / stem / name).write_bytes(blob)
        path, save = out / stem / main_file(data), out / stem
        regenerate = f"--format {fmt} --seed {seed} --index {r.index} --save {save}"
    else:
        path = save = out / f"{stem}.tflite"
        path.write_bytes(data)
        models = " ".join(model_args) if model_args else "<the same --models>"
        regenerate = f"--seed {seed} --index {r.index} --models {models} --save {save}"
    (out / f"{stem}.txt").write_text(
        f"outcome: {r.outcome} ({r.cls})\nmodel: {r.model}\nmutation: {r.desc}\n"
        f"seconds: {r.seconds:.2f}\n\nreproduce (shows the traceback; --in-process: without "
        f"refnet's bounded reader):\n"
        f"  python -m tools.fuzz --run {path}\n"
        f"regenerate the mutant:\n"
        f"  python -m tools.fuzz {regenerate}\n\n"
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


def format_table(summary: dict, file=sys.stdout) -> None:
    """One row per format: outcome counts, mutants, wall-clock and worker seconds per mutant.
    `summary`: format -> (results, wall-clock seconds, jobs)."""
    print(f"{'format':<14}" + "".join(f"{o:>9}" for o in OUTCOMES)
          + f"{'mutants':>9}{'s/mutant':>10}{'worker s':>10}", file=file)
    for fmt, (results, wall, jobs) in summary.items():
        c = Counter(r.outcome for r in results)
        n = max(1, len(results))
        print(f"{fmt:<14}" + "".join(f"{c[o]:>9}" for o in OUTCOMES) + f"{len(results):>9}"
              f"{wall / n:>10.3f}{sum(r.seconds for r in results) / n:>10.3f}", file=file)


def _seeds_for(fmt: str, models: list[str]) -> dict:
    return load_seeds(models) if fmt == "tflite" else load_file_seeds(fmt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", nargs="+", default=["tflite"], choices=FORMATS,
                    help="what to mutate; several: one campaign each, then a table per format")
    ap.add_argument("--count", type=int, default=1000, help="mutants per format")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="index of the first mutant")
    ap.add_argument("--models", nargs="+", default=["real", "factory", "mini"],
                    help="seed .tflite models (--format tflite)")
    ap.add_argument("--kinds", nargs="+", default=None,
                    choices=sorted(set(MUTATIONS) | set(KERAS_MUTATIONS)),
                    help="mutation kinds (default: all of the format's)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per mutant")
    ap.add_argument("--address-space", type=int, default=4 * GIB,
                    help="RLIMIT_AS of a worker, bytes (default 4 GiB)")
    ap.add_argument("--out", type=Path, default=None, help="where problems are saved")
    ap.add_argument("--run", type=Path, help="run one model file (a saved mutant) and classify it")
    ap.add_argument("--in-process", action="store_true",
                    help="with --run: read a checkpoint in this process, without refnet's bounded reader")
    ap.add_argument("--index", type=int, help="with --save: regenerate this mutant")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        worker_main(args.address_space, args.out)
        return 0
    if args.run is not None:
        try:
            if args.run.suffix == ".tflite":
                exercise(args.run.read_bytes())
            else:
                exercise_path(str(args.run), bounded=not args.in_process)
        except BaseException as exc:  # noqa: BLE001
            outcome, cls, message = classify_exception(exc)
            traceback.print_exc()
            print(f"\noutcome: {outcome} ({cls})")
            return 1 if outcome in PROBLEMS else 0
        print("outcome: ran")
        return 0
    if args.index is not None:
        fmt = args.format[0]
        name, kind, data, desc = Campaign(_seeds_for(fmt, args.models), args.seed, args.kinds,
                                          fmt).mutant(args.index)
        print(f"mutant {args.index}: {name}, {desc}")
        if args.save and isinstance(data, dict):
            args.save.mkdir(parents=True, exist_ok=True)
            for file_name, blob in data.items():
                (args.save / file_name).write_bytes(blob)
            print(f"saved to {args.save / main_file(data)}")
        elif args.save:
            args.save.write_bytes(data)
            print(f"saved to {args.save}")
        return 0
    summary, problems = {}, False
    out = args.out or DEFAULT_OUT / f"seed{args.seed}"
    for fmt in args.format:
        seeds = _seeds_for(fmt, args.models)
        print(f"fuzzing {args.count} {fmt} mutants (seed {args.seed}) of {len(seeds)} seeds with "
              f"{args.jobs} workers, {args.timeout:.0f} s timeout, address space "
              f"{args.address_space / GIB:.1f} GiB", file=sys.stderr)
        t0 = time.monotonic()
        results = run_campaign(seeds, args.count, args.seed, args.jobs, args.timeout,
                               args.address_space, out, args.kinds, args.start, progress=True,
                               model_args=args.models, fmt=fmt)
        print(f"== {fmt}")
        totals = report(results)
        summary[fmt] = (results, time.monotonic() - t0, args.jobs)
        print(f"{len(results)} mutants in {summary[fmt][1]:.0f} s\n")
        problems |= any(totals.get(p) for p in PROBLEMS)
    format_table(summary)
    if problems:
        print(f"problems saved to {out}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
