"""TF checkpoint (TensorBundle V2) reader and TF-slim importer - pure Python + NumPy, no TF.

A checkpoint `PREFIX` is two files:

  PREFIX.index                  a LevelDB-format SSTable (TF's tensorflow/core/lib/io/table):
                                sorted key -> value entries. Key "" holds a BundleHeaderProto;
                                every other key is a tensor name whose value is a
                                BundleEntryProto (dtype, shape, shard id, offset, size, crc32c).
  PREFIX.data-00000-of-00001    the raw little-endian tensor bytes (one file per shard).

SSTable layout, all parsed here by hand:
  file   = data blocks | metaindex block | index block | footer (48 bytes)
  footer = BlockHandle(metaindex) BlockHandle(index), zero-padded to 40 bytes, then the magic
           0xdb4775248b80fb57 (fixed64 LE); BlockHandle = varint64 offset, varint64 size
  block  = entries, restart offsets (fixed32 each), restart count (fixed32); followed in the
           file by a 5-byte trailer: compression type (must be 0, none) and the masked CRC32C
           of block + type byte
  entry  = varint32 shared, varint32 non_shared, varint32 value_length, key[shared:] bytes,
           value bytes (keys are prefix-compressed against the previous key)
The index block maps the last key of each data block to that block's BlockHandle.

Protobufs are decoded by hand (varint / length-delimited / fixed32 / fixed64 wire types):
  BundleHeaderProto  1 num_shards, 2 endianness (0 little), 3 version
  BundleEntryProto   1 dtype, 2 shape (TensorShapeProto: 2 dim {1 size}, 3 unknown_rank),
                     3 shard_id, 4 offset, 5 size, 6 crc32c (fixed32, masked), 7 slices
Every read is bounds-checked; damage raises ModelFormatError naming the file and the entry.

TF-slim importer: variable names are slim's (`MobilenetV2/Conv/weights`,
`.../BatchNorm/moving_mean`, ...). When the checkpoint holds exponential-moving-average
shadows (`<var>/ExponentialMovingAverage`, as the seed's published checkpoints do and slim's
evaluation uses), those are taken; optimizer slots and global_step are ignored.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from ..models import ArchSpec

IMPORTER_VERSION = "1"
TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5

# tensorflow DataType enum -> NumPy dtype (numeric types only)
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
          9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
DT_STRING = 7

# --- CRC32C (Castagnoli), vectorized over 1 KiB chunks ------------------------------------------

_POLY = 0x82F63B78
_TABLE = np.zeros(256, np.uint32)
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE[_i] = _c
_TABLE_LIST = [int(v) for v in _TABLE]
_CHUNK = 1024
_SHIFT_TABLES = None


def _advance(state: int, data: bytes) -> int:
    t = _TABLE_LIST
    for b in data:
        state = t[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def _shift_tables():
    """Four 256-entry tables: the register after _CHUNK zero bytes, linear in its start value."""
    global _SHIFT_TABLES
    if _SHIFT_TABLES is None:
        zeros = bytes(_CHUNK)
        basis = [_advance(1 << i, zeros) for i in range(32)]
        tables = []
        for k in range(4):
            tab = []
            for byte in range(256):
                v = 0
                for bit in range(8):
                    if byte >> bit & 1:
                        v ^= basis[8 * k + bit]
                tab.append(v)
            tables.append(tab)
        _SHIFT_TABLES = tables
    return _SHIFT_TABLES


def crc32c(data) -> int:
    buf = np.frombuffer(memoryview(data), np.uint8)
    n = buf.size // _CHUNK
    state = 0xFFFFFFFF
    if n:
        chunks = buf[: n * _CHUNK].reshape(n, _CHUNK)
        crc = np.zeros(n, np.uint32)
        for j in range(_CHUNK):
            crc = _TABLE[(crc ^ chunks[:, j]) & 0xFF] ^ (crc >> np.uint32(8))
        t0, t1, t2, t3 = _shift_tables()
        for c in crc.tolist():
            state = (t0[state & 0xFF] ^ t1[(state >> 8) & 0xFF] ^ t2[(state >> 16) & 0xFF]
                     ^ t3[state >> 24] ^ c)
    state = _advance(state, buf[n * _CHUNK:].tobytes())
    return state ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --- varints and protobuf -----------------------------------------------------------------------

class _Corrupt(Exception):
    pass


def _varint(buf, pos: int, limit: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= limit or shift > 63:
            raise _Corrupt("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes):
    """(field number, wire type, value) for each field; value = int or bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise _Corrupt("truncated fixed64")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _Corrupt("length-delimited field runs past its message")
            value = bytes(buf[pos:pos + n])
            pos += n
        elif wire == 5:
            if pos + 4 > end:
                raise _Corrupt("truncated fixed32")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise _Corrupt(f"unsupported wire type {wire}")
        yield field, wire, value


@dataclass
class BundleEntry:
    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    sliced: bool = False


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for f, w, v in _proto_fields(buf):
        if f == 2 and w == 2:
            size = 0
            for f2, w2, v2 in _proto_fields(v):
                if f2 == 1 and w2 == 0:
                    size = v2 - (1 << 64) if v2 >> 63 else v2
            dims.append(size)
        elif f == 3 and w == 0 and v:
            raise _Corrupt("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> BundleEntry:
    e = BundleEntry(name, 0, ())
    for f, w, v in _proto_fields(buf):
        if f == 1 and w == 0:
            e.dtype = v
        elif f == 2 and w == 2:
            e.shape = _parse_shape(v)
        elif f == 3 and w == 0:
            e.shard_id = v
        elif f == 4 and w == 0:
            e.offset = v
        elif f == 5 and w == 0:
            e.size = v
        elif f == 6 and w == 5:
            e.crc32c = v
        elif f == 7:
            e.sliced = True
    return e


# --- SSTable ------------------------------------------------------------------------------------

def _block_handle(buf, pos, limit):
    off, pos = _varint(buf, pos, limit)
    size, pos = _varint(buf, pos, limit)
    return off, size, pos


def _read_block(data: bytes, off: int, size: int, what: str, verify: bool) -> bytes:
    if off + size + BLOCK_TRAILER > len(data):
        raise _Corrupt(f"{what} (offset {off}, size {size}) runs past the end of the file")
    block = data[off:off + size]
    ctype = data[off + size]
    if ctype != 0:
        raise _Corrupt(f"{what} uses compression type {ctype}; TensorBundle tables are uncompressed")
    if verify:
        stored = struct.unpack_from("<I", data, off + size + 1)[0]
        if mask_crc(crc32c(data[off:off + size + 1])) != stored:
            raise _Corrupt(f"{what}: CRC32C mismatch")
    return block


def _block_entries(block: bytes, what: str):
    if len(block) < 4:
        raise _Corrupt(f"{what} is too short")
    nrestarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * nrestarts
    if limit < 0:
        raise _Corrupt(f"{what}: restart array larger than the block")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos, limit)
        non_shared, pos = _varint(block, pos, limit)
        vlen, pos = _varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + vlen > limit:
            raise _Corrupt(f"{what}: entry runs past the block")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + vlen]
        pos += vlen


def read_index(path: Path, verify: bool = True) -> tuple[dict, list[BundleEntry]]:
    """Parse PREFIX.index -> (header fields, entries in key order)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read ({e})") from None
    entry_name = "footer"
    try:
        if len(data) < FOOTER_SIZE:
            raise _Corrupt(f"{len(data)} bytes: shorter than the 48-byte table footer")
        footer = data[-FOOTER_SIZE:]
        if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
            raise _Corrupt("bad table magic number: not a TensorBundle .index (or truncated)")
        _, _, pos = _block_handle(footer, 0, 40)
        ioff, isize, _ = _block_handle(footer, pos, 40)
        entry_name = "index block"
        index = _read_block(data, ioff, isize, "index block", verify)
        header, entries, last = None, [], None
        for _, handle in _block_entries(index, "index block"):
            off, size, _ = _block_handle(handle, 0, len(handle))
            entry_name = f"data block at {off}"
            block = _read_block(data, off, size, entry_name, verify)
            for key, value in _block_entries(block, entry_name):
                if last is not None and key <= last:
                    raise _Corrupt(f"keys out of order at '{key.decode(errors='replace')}'")
                last = key
                name = key.decode("utf-8", errors="replace")
                entry_name = f"entry '{name}'"
                if key == b"":
                    header = {f: v for f, _, v in _proto_fields(value)}
                else:
                    entries.append(_parse_entry(name, value))
        if header is None:
            raise _Corrupt("no BundleHeaderProto (empty key): not a TensorBundle index")
    except _Corrupt as e:
        raise ModelFormatError(f"{path}: {entry_name}: {e}") from None
    return header, entries


class TensorBundle:
    """Read-only TF checkpoint: names, shapes, dtypes and tensors by name."""

    def __init__(self, prefix, verify: bool = True):
        prefix = str(prefix)
        for suffix in (".index",):
            if prefix.endswith(suffix):
                prefix = prefix[: -len(suffix)]
        if ".data-" in Path(prefix).name:
            prefix = prefix[: prefix.rindex(".data-")]
        self.prefix = prefix
        self.index_path = Path(prefix + ".index")
        if not self.index_path.exists():
            raise ModelFormatError(f"{self.index_path}: no such file (checkpoint prefix {prefix})")
        self.verify = verify
        self.header, entries = read_index(self.index_path, verify)
        self.entries = {e.name: e for e in entries}
        self.num_shards = int(self.header.get(1, 1))
        if self.header.get(2, 0) != 0:
            raise ModelFormatError(f"{self.index_path}: big-endian checkpoint, not supported")
        self._shards: dict[int, bytes] = {}

    def shard_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def _shard(self, shard: int) -> bytes:
        if shard not in self._shards:
            if not 0 <= shard < self.num_shards:
                raise ModelFormatError(f"{self.index_path}: shard {shard} of {self.num_shards}")
            p = self.shard_path(shard)
            try:
                self._shards[shard] = p.read_bytes()
            except OSError as e:
                raise ModelFormatError(f"{p}: cannot read data shard ({e})") from None
        return self._shards[shard]

    def names(self) -> list[str]:
        return list(self.entries)

    def tensor(self, name: str) -> np.ndarray:
        e = self.entries.get(name)
        if e is None:
            raise ModelFormatError(f"{self.index_path}: no tensor '{name}'")
        where = f"{self.shard_path(e.shard_id)}: tensor '{name}'"
        if e.sliced:
            raise ModelFormatError(f"{where} is stored as slices (partitioned variable): "
                                   f"not supported")
        if e.dtype not in DTYPES:
            raise ModelFormatError(f"{where} has dtype enum {e.dtype}, not a numeric type")
        dt = np.dtype(DTYPES[e.dtype]).newbyteorder("<")
        count = int(np.prod(e.shape, dtype=np.int64))
        if any(d < 0 for d in e.shape) or count * dt.itemsize != e.size:
            raise ModelFormatError(f"{where}: shape {e.shape} x {dt} is {count * dt.itemsize} "
                                   f"bytes, the entry says {e.size}")
        data = self._shard(e.shard_id)
        if e.offset + e.size > len(data):
            raise ModelFormatError(f"{where}: bytes {e.offset}..{e.offset + e.size} lie past the "
                                   f"end of the data file ({len(data)} bytes; truncated?)")
        raw = data[e.offset:e.offset + e.size]
        if self.verify and e.crc32c is not None and mask_crc(crc32c(raw)) != e.crc32c:
            raise ModelFormatError(f"{where}: CRC32C mismatch (corrupt data file)")
        return np.frombuffer(raw, dt).reshape(e.shape).astype(dt.newbyteorder("="))


# --- TF-slim importer ---------------------------------------------------------------------------

SLIM_VARIABLES = ("weights", "depthwise_weights", "biases", "gamma", "beta", "moving_mean",
                  "moving_variance")
EMA = "/ExponentialMovingAverage"


def slim_variables(bundle: TensorBundle, use_ema: bool = True) -> dict[str, np.ndarray]:
    out = {}
    names = set(bundle.names())
    for name in sorted(names):
        if name.rsplit("/", 1)[-1] not in SLIM_VARIABLES:
            continue
        src = name + EMA if use_ema and name + EMA in names else name
        out[name] = np.asarray(bundle.tensor(src), np.float32)
    return out


def import_tensorbundle(path, spec: ArchSpec | None = None, resolution: int | None = None,
                        use_ema: bool = True):
    from .common import DEFAULT_RESOLUTION, infer_spec, make_store, resolution_note
    bundle = TensorBundle(path)
    variables = slim_variables(bundle, use_ema)
    given_spec = spec is not None  # --arch ... --resolution R: the user's resolution
    if spec is None:
        spec = infer_spec(variables, str(bundle.index_path), resolution=resolution or DEFAULT_RESOLUTION)
    else:
        keep = set(__import__("refnet.models", fromlist=["get_net"]).get_net(spec).variables())
        variables = {k: v for k, v in variables.items() if k in keep}
    used_ema = use_ema and any(n.endswith(EMA) for n in bundle.names())
    return make_store(spec, variables, bundle.index_path, "tf-checkpoint",
                      "refnet.importers.tensorbundle", IMPORTER_VERSION,
                      notes=("exponential-moving-average values used; " if used_ema else "") +
                            resolution_note(spec.resolution, given=resolution is not None or given_spec))
