"""Read a .tflite flatbuffer into a Graph, validating it on the way.

The schema accessors come from the `tflite` package (generated from the official schema).
Every failure is re-raised as a typed RefnetError naming the file and the table at fault: a
flatbuffer is a web of offsets, and a bad one must never surface as a struct.error or worse.
"""
from __future__ import annotations

import inspect
import math
import re
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import tflite

from .errors import InvalidModelError, ModelFormatError, RefnetError
from .graph import Graph, Op, Quantization, Signature, Tensor

# TensorType enum -> NumPy dtype (only the types MobileNets and their heads use).
TENSOR_DTYPES = {
    0: np.dtype(np.float32),
    1: np.dtype(np.float16),
    2: np.dtype(np.int32),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int64),
    6: np.dtype(np.bool_),
    7: np.dtype(np.int16),
    9: np.dtype(np.int8),
    10: np.dtype(np.float64),
}
DTYPE_TO_TENSOR_TYPE = {v: k for k, v in TENSOR_DTYPES.items()}


def _enum_names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


BUILTIN_OP_NAMES = _enum_names(tflite.BuiltinOperator)
BUILTIN_OP_CODES = {v: k for k, v in BUILTIN_OP_NAMES.items()}
OPTIONS_TYPE_NAMES = _enum_names(tflite.BuiltinOptions)
PADDING_NAMES = _enum_names(tflite.Padding)
ACTIVATION_NAMES = _enum_names(tflite.ActivationFunctionType)

# Limits that keep a hostile file from making the reader loop or allocate without bound.
MAX_RANK = 8
MAX_ELEMENTS = 1 << 34


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@lru_cache(maxsize=None)
def _option_fields(cls) -> tuple[tuple[str, str, bool], ...]:
    """(accessor, snake_case name, is_vector) for every field of a generated options class."""
    fields = []
    for name, fn in vars(cls).items():
        if name.startswith("_") or name in ("Init",) or name.startswith("GetRootAs"):
            continue
        if not callable(fn) or name.endswith(("Length", "IsNone")) or name.endswith("AsNumpy"):
            continue
        if name.endswith("BufferHasIdentifier"):
            continue
        params = list(inspect.signature(fn).parameters)
        if params == ["self"]:
            fields.append((name, _snake(name), False))
        elif params == ["self", "j"] and hasattr(cls, name + "AsNumpy"):
            fields.append((name + "AsNumpy", _snake(name), True))
    return tuple(fields)


TRUNCATED = "the file is truncated (a download or copy cut short?) or corrupt"


def _checked(obj, data: bytes, where: str):
    """`obj` (a generated table accessor) if the table and its vtable lie inside the file.

    The flatbuffers runtime does not verify: a vtable found through a corrupt signed offset can
    sit before the start of the buffer, where Python's negative indexing would silently read the
    file's tail instead of failing."""
    if obj is None:
        return None
    pos, n = obj._tab.Pos, len(data)
    if pos > n - 4:
        raise ModelFormatError(f"{where}: table at byte {pos} lies past the end of the file ({n} bytes): "
                               f"{TRUNCATED}")
    if pos < 0:
        raise ModelFormatError(f"{where}: table at byte {pos} lies outside the file ({n} bytes)")
    vtable = pos - struct.unpack_from("<i", data, pos)[0]
    if not 0 <= vtable <= n - 4:
        raise ModelFormatError(f"{where}: vtable at byte {vtable} lies outside the file ({n} bytes)")
    vt_size, table_size = struct.unpack_from("<HH", data, vtable)
    if vt_size < 4 or vt_size % 2 or vtable + vt_size > n or pos + table_size > n:
        raise ModelFormatError(f"{where}: table at byte {pos} (vtable {vtable}, {vt_size} bytes; "
                               f"{table_size} bytes inline) runs past the end of the file")
    return obj


def _read_options(op_fb, where: str) -> dict:
    options_type = op_fb.BuiltinOptionsType()
    if options_type == 0:
        return {}
    type_name = OPTIONS_TYPE_NAMES.get(options_type)
    if type_name is None or not hasattr(tflite, type_name):
        raise ModelFormatError(f"{where}: unknown builtin options type {options_type}")
    table = op_fb.BuiltinOptions()
    if table is None:
        return {}
    cls = getattr(tflite, type_name)
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    _checked(obj, table.Bytes, f"{where}: builtin options")
    options = {}
    for accessor, key, is_vector in _option_fields(cls):
        value = getattr(obj, accessor)()
        if is_vector:
            value = [] if isinstance(value, int) else [int(v) for v in value]
        options[key] = value
    if "padding" in options:
        options["padding"] = PADDING_NAMES.get(options["padding"], options["padding"])
    if "fused_activation_function" in options:
        options["fused_activation_function"] = ACTIVATION_NAMES.get(
            options["fused_activation_function"], options["fused_activation_function"]
        )
    return options


def _buffer_bytes(model_fb, buf_index: int, data: bytes, where: str) -> memoryview | None:
    if buf_index == 0:  # buffer 0 is the schema's empty sentinel
        return None
    if not 0 <= buf_index < model_fb.BuffersLength():
        raise ModelFormatError(f"{where}: buffer index {buf_index} outside the buffer table "
                               f"({model_fb.BuffersLength()} buffers)")
    buf = _checked(model_fb.Buffers(buf_index), data, f"{where}: buffer {buf_index}")
    offset, size = buf.Offset(), buf.Size()
    if offset > 1:  # large models keep buffers outside the flatbuffer, addressed from file start
        if offset + size > len(data):
            raise ModelFormatError(f"{where}: buffer {buf_index} spans bytes {offset}..{offset + size}, "
                                   f"past the end of the file ({len(data)} bytes)")
        return memoryview(data)[offset:offset + size]
    if buf.DataIsNone() or buf.DataLength() == 0:
        return None
    start = buf._tab.Vector(buf._tab.Offset(4))
    length = buf.DataLength()
    if start + length > len(data):
        raise ModelFormatError(f"{where}: buffer {buf_index} runs past the end of the file")
    return memoryview(data)[start:start + length]


def _read_quantization(t_fb, shape, where: str) -> Quantization | None:
    q = _checked(t_fb.Quantization(), t_fb._tab.Bytes, f"{where}: quantization")
    if q is None or q.ScaleIsNone() or q.ScaleLength() == 0:
        return None
    scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32).copy()
    zp = q.ZeroPointAsNumpy()
    zero_point = (np.zeros(scale.size, np.int64) if isinstance(zp, int)
                  else np.asarray(zp, dtype=np.int64).copy())
    axis = q.QuantizedDimension()
    if zero_point.size == 1 and scale.size > 1:
        zero_point = np.repeat(zero_point, scale.size)
    if zero_point.size != scale.size:
        raise InvalidModelError(f"{where}: {scale.size} scales but {zero_point.size} zero points")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise InvalidModelError(f"{where}: quantization scales must be finite and > 0, got "
                                f"{scale[:4].tolist()}{'...' if scale.size > 4 else ''}")
    if scale.size > 1:
        if not 0 <= axis < len(shape) or shape[axis] != scale.size:
            raise InvalidModelError(f"{where}: per-channel quantization on axis {axis} with "
                                    f"{scale.size} scales does not fit shape {list(shape)}")
    return Quantization(scale=scale, zero_point=zero_point, axis=int(axis))


def _read_tensor(model_fb, sg, i: int, data: bytes, source: str) -> Tensor:
    t_fb = _checked(sg.Tensors(i), data, f"{source}: tensor {i}")
    name = (t_fb.Name() or b"").decode("utf-8", "replace")
    where = f"{source}: tensor {i} '{name}'"
    type_code = t_fb.Type()
    if type_code not in TENSOR_DTYPES:
        raise InvalidModelError(f"{where}: tensor type {type_code} is not supported")
    dtype = TENSOR_DTYPES[type_code]
    rank = t_fb.ShapeLength()
    if rank > MAX_RANK:
        raise InvalidModelError(f"{where}: rank {rank} exceeds {MAX_RANK}")
    shape = tuple(int(t_fb.Shape(k)) for k in range(rank))
    if any(d < 0 for d in shape):
        raise InvalidModelError(f"{where}: negative dimension in shape {list(shape)}")
    n_elements = math.prod(shape)  # exact: np.prod in int64 wraps (65536**4 == 0)
    if n_elements > MAX_ELEMENTS:
        raise InvalidModelError(f"{where}: {n_elements} elements is beyond any MobileNet")
    sig = None
    if t_fb.ShapeSignatureLength() > 0:
        sig = tuple(int(t_fb.ShapeSignature(k)) for k in range(min(t_fb.ShapeSignatureLength(), MAX_RANK)))
    if t_fb.Sparsity() is not None:
        raise InvalidModelError(f"{where}: sparse tensors are not supported")
    raw = _buffer_bytes(model_fb, t_fb.Buffer(), data, where)
    array = None
    if raw is not None:
        expected = n_elements * dtype.itemsize
        if len(raw) != expected:
            raise InvalidModelError(f"{where}: buffer holds {len(raw)} bytes but shape {list(shape)} "
                                    f"of {dtype.name} needs {expected}")
        # a read-only view of the file's bytes (no second copy of the weights in memory); a
        # native copy on big-endian hosts and for a buffer the file does not align
        array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)
        if not (array.dtype.isnative and array.flags.aligned):
            array = array.astype(dtype)
        array.setflags(write=False)
    quant = _read_quantization(t_fb, shape, where)
    if quant is not None and dtype.kind in "iu" and dtype != np.int32 and dtype != np.int64:
        info = np.iinfo(dtype)
        if np.any(quant.zero_point < info.min) or np.any(quant.zero_point > info.max):
            raise InvalidModelError(f"{where}: zero point outside the {dtype.name} range")
    return Tensor(index=i, name=name, shape=shape, dtype=dtype, data=array, quantization=quant,
                  shape_signature=sig, is_variable=bool(t_fb.IsVariable()))


def _opcode_name(model_fb, opcode_index: int, where: str) -> tuple[str, str | None, int]:
    if not 0 <= opcode_index < model_fb.OperatorCodesLength():
        raise ModelFormatError(f"{where}: opcode index {opcode_index} outside the opcode table")
    oc = _checked(model_fb.OperatorCodes(opcode_index), model_fb._tab.Bytes,
                  f"{where}: operator code {opcode_index}")
    # Old files only fill the deprecated int8 field; new ones put 127 there (placeholder).
    code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    custom = oc.CustomCode()
    custom = custom.decode("utf-8", "replace") if custom else None
    kind = BUILTIN_OP_NAMES.get(code, f"UNKNOWN_BUILTIN_{code}")
    return kind, custom, oc.Version()


def _read_signatures(model_fb, data: bytes, source: str, tensor_count: int) -> dict[str, Signature]:
    signatures = {}
    for k in range(model_fb.SignatureDefsLength()):
        sig = _checked(model_fb.SignatureDefs(k), data, f"{source}: signature {k}")
        key = (sig.SignatureKey() or b"").decode("utf-8", "replace")
        maps = []
        for length, get, side in ((sig.InputsLength(), sig.Inputs, "input"),
                                  (sig.OutputsLength(), sig.Outputs, "output")):
            names = {}
            for j in range(length):
                entry = _checked(get(j), data, f"{source}: signature '{key}' {side} {j}")
                name = (entry.Name() or b"").decode("utf-8", "replace")
                index = entry.TensorIndex()
                if sig.SubgraphIndex() == 0 and not 0 <= index < tensor_count:
                    raise InvalidModelError(f"{source}: signature '{key}' {side} '{name}' names tensor "
                                            f"{index}, outside the tensor table (0..{tensor_count - 1})")
                names[name] = int(index)
            maps.append(names)
        signatures[key] = Signature(inputs=maps[0], outputs=maps[1], subgraph=int(sig.SubgraphIndex()))
    return signatures


def _validate_graph(graph: Graph) -> None:
    n = len(graph.tensors)
    available = {t.index for t in graph.tensors if t.is_constant or t.is_variable}
    available.update(graph.inputs)
    for op in graph.ops:
        where = f"{graph.source}: {op.describe()}"
        for t in op.inputs + op.outputs:
            if t != -1 and not 0 <= t < n:
                raise InvalidModelError(f"{where}: tensor index {t} outside the tensor table ({n} tensors)")
        for t in op.inputs:
            if t != -1 and t not in available:
                raise InvalidModelError(f"{where}: input tensor {t} '{graph.tensors[t].name}' is read "
                                        f"before any op writes it (cycle or bad order)")
        for t in op.outputs:
            if t == -1:
                raise InvalidModelError(f"{where}: output tensor index -1")
            if graph.tensors[t].is_constant:
                raise InvalidModelError(f"{where}: writes constant tensor {t}")
        available.update(op.outputs)
    for t in graph.inputs + graph.outputs:
        if not 0 <= t < n:
            raise InvalidModelError(f"{graph.source}: subgraph input/output {t} outside the tensor table")
    for t in graph.outputs:
        if t not in available:
            raise InvalidModelError(f"{graph.source}: output tensor {t} is never written")


def read_tflite(model_path=None, model_content: bytes | None = None, source: str | None = None) -> Graph:
    """Parse and validate a .tflite model (from a path or bytes) into a Graph.

    `source` names the model in errors (default: the path, or "<model_content>" for bytes): the
    command line passes the path as the user typed it."""
    if (model_path is None) == (model_content is None):
        raise RefnetError("give exactly one of model_path or model_content")
    if model_path is not None:
        source = source or str(model_path)
        try:
            data = Path(model_path).read_bytes()
        except FileNotFoundError:
            raise ModelFormatError(f"{source}: no such file") from None
        except OSError as e:
            raise ModelFormatError(f"{source}: cannot read: {e}") from None
    else:
        source = source or "<model_content>"
        data = bytes(model_content)
    if len(data) < 8:
        raise ModelFormatError(f"{source}: {len(data)} bytes is too short to be a .tflite file")
    if data[4:8] != b"TFL3":
        raise ModelFormatError(f"{source}: not a .tflite file (file identifier {data[4:8]!r}, "
                               f"expected b'TFL3')")
    try:
        return _read(data, source)
    except RefnetError:
        raise
    except struct.error as e:  # a read past the end of the data
        raise ModelFormatError(f"{source}: the flatbuffer points past the end of the file ({len(data)} "
                               f"bytes): {TRUNCATED} ({e})") from None
    except Exception as e:  # IndexError, UnicodeError... from a corrupt flatbuffer
        raise ModelFormatError(f"{source}: corrupt flatbuffer ({type(e).__name__}: {e})") from None


def _read(data: bytes, source: str) -> Graph:
    model_fb = _checked(tflite.Model.GetRootAsModel(data, 0), data, f"{source}: model")
    if model_fb.SubgraphsLength() < 1:
        raise InvalidModelError(f"{source}: the model has no subgraph")
    sg = _checked(model_fb.Subgraphs(0), data, f"{source}: subgraph 0")
    for k in range(model_fb.BuffersLength()):  # every buffer table, read or not
        _checked(model_fb.Buffers(k), data, f"{source}: buffer {k}")
    tensors = [_read_tensor(model_fb, sg, i, data, source) for i in range(sg.TensorsLength())]
    ops = []
    for k in range(sg.OperatorsLength()):
        op_fb = _checked(sg.Operators(k), data, f"{source}: op {k}")
        kind, custom, version = _opcode_name(model_fb, op_fb.OpcodeIndex(), f"{source}: op {k}")
        where = f"{source}: op {k} ({kind})"
        inputs = tuple(int(v) for v in op_fb.InputsAsNumpy()) if op_fb.InputsLength() else ()
        outputs = tuple(int(v) for v in op_fb.OutputsAsNumpy()) if op_fb.OutputsLength() else ()
        options = _read_options(op_fb, where)
        if kind == "CUSTOM" and op_fb.CustomOptionsLength():
            options["custom_options"] = bytes(op_fb.CustomOptionsAsNumpy().tobytes())
        ops.append(Op(index=k, kind=kind, inputs=inputs, outputs=outputs, options=options,
                      version=version, custom_code=custom))
    g_inputs = tuple(int(v) for v in sg.InputsAsNumpy()) if sg.InputsLength() else ()
    g_outputs = tuple(int(v) for v in sg.OutputsAsNumpy()) if sg.OutputsLength() else ()
    # A zero-element tensor that nothing writes (e.g. RESHAPE's empty shape, MEAN's empty axes)
    # needs no buffer: LiteRT reads it as an empty constant, and so does refnet.
    written = {t for op in ops for t in op.outputs} | set(g_inputs)
    for t in tensors:
        if t.data is None and not t.is_variable and t.index not in written and 0 in t.shape:
            t.data = np.zeros(t.shape, t.dtype)
            t.data.setflags(write=False)
    desc = model_fb.Description()
    graph = Graph(tensors=tensors, ops=ops, inputs=g_inputs, outputs=g_outputs, source=source,
                  description=desc.decode("utf-8", "replace") if desc else "",
                  signatures=_read_signatures(model_fb, data, source, len(tensors)),
                  subgraph_count=model_fb.SubgraphsLength(),
                  subgraph_name=(sg.Name() or b"").decode("utf-8", "replace"))
    _validate_graph(graph)
    return graph
