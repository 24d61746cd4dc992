"""Write small .tflite flatbuffers: single-op test models and isolated-op replays.

A model is described with the same Graph/Tensor/Op classes the reader produces, so
read_tflite(write_tflite(graph)) round-trips. Options use the reader's snake_case names.
"""
from __future__ import annotations

import importlib

import flatbuffers
import numpy as np
import tflite

from .errors import RefnetError
from .graph import Graph, Op, Quantization, Tensor
from .tflite_reader import (ACTIVATION_NAMES, BUILTIN_OP_CODES, DTYPE_TO_TENSOR_TYPE,
                            OPTIONS_TYPE_NAMES, PADDING_NAMES, _option_fields)

# Op kind -> its builtin options table (kinds without options are absent).
OPTIONS_TABLE = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "ADD": "AddOptions", "MUL": "MulOptions",
    "SUB": "SubOptions", "MEAN": "ReducerOptions", "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions", "REDUCE_MIN": "ReducerOptions", "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions", "SOFTMAX": "SoftmaxOptions", "RESHAPE": "ReshapeOptions",
    "SQUEEZE": "SqueezeOptions", "SHAPE": "ShapeOptions", "STRIDED_SLICE": "StridedSliceOptions",
    "PACK": "PackOptions", "PAD": "PadOptions", "CONCATENATION": "ConcatenationOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions", "ARG_MAX": "ArgMaxOptions", "TILE": "TileOptions",
    "HARD_SWISH": "HardSwishOptions", "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions", "SPLIT": "SplitOptions", "SPLIT_V": "SplitVOptions",
    "UNPACK": "UnpackOptions", "TRANSPOSE": "TransposeOptions", "GATHER": "GatherOptions",
    "GATHER_ND": "GatherNdOptions", "DIV": "DivOptions", "FLOOR_DIV": "FloorDivOptions",
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions", "CAST": "CastOptions",
    "DEPTH_TO_SPACE": "DepthToSpaceOptions", "SPACE_TO_BATCH_ND": "SpaceToBatchNDOptions",
    "BATCH_TO_SPACE_ND": "BatchToSpaceNDOptions", "TRANSPOSE_CONV": "TransposeConvOptions",
    "LEAKY_RELU": "LeakyReluOptions", "L2_NORMALIZATION": "L2NormOptions",
}
_OPTIONS_TYPE_CODES = {v: k for k, v in OPTIONS_TYPE_NAMES.items()}
_PADDING_CODES = {v: k for k, v in PADDING_NAMES.items()}
_ACTIVATION_CODES = {v: k for k, v in ACTIVATION_NAMES.items()}


def _int_vector(b: flatbuffers.Builder, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(list(values)):
        b.PrependInt32(int(v))
    return b.EndVector()


def _typed_vector(b: flatbuffers.Builder, array: np.ndarray) -> int:
    return b.CreateNumpyVector(np.ascontiguousarray(array))


def _write_options(b: flatbuffers.Builder, kind: str, options: dict) -> tuple[int, int]:
    table = OPTIONS_TABLE.get(kind)
    if table is None:
        return 0, 0
    module = importlib.import_module(f"tflite.{table}")
    cls = getattr(module, table)
    fields = {snake: (accessor.removesuffix("AsNumpy"), is_vec)
              for accessor, snake, is_vec in _option_fields(cls)}
    values = {}
    for key, value in options.items():
        if key not in fields:
            continue  # e.g. custom_options, or reader-only keys
        if key == "padding" and isinstance(value, str):
            value = _PADDING_CODES[value]
        if key == "fused_activation_function" and isinstance(value, str):
            value = _ACTIVATION_CODES[value]
        values[key] = value
    vectors = {k: _int_vector(b, v) for k, v in values.items() if fields[k][1]}
    getattr(module, f"{table}Start")(b)
    for key, value in values.items():
        camel, is_vec = fields[key]
        adder = getattr(module, f"{table}Add{camel}")
        if is_vec:
            adder(b, vectors[key])
        elif isinstance(value, float):
            adder(b, float(value))
        else:
            adder(b, int(value))
    return _OPTIONS_TYPE_CODES[table], getattr(module, f"{table}End")(b)


def _write_quantization(b: flatbuffers.Builder, q: Quantization) -> int:
    scale = _typed_vector(b, q.scale.astype("<f4"))
    zp = _typed_vector(b, q.zero_point.astype("<i8"))
    m = tflite
    m.QuantizationParametersStart(b)
    m.QuantizationParametersAddScale(b, scale)
    m.QuantizationParametersAddZeroPoint(b, zp)
    m.QuantizationParametersAddQuantizedDimension(b, q.axis)
    return m.QuantizationParametersEnd(b)


def write_tflite(graph: Graph) -> bytes:
    """Serialize a Graph (one subgraph) to .tflite bytes."""
    b = flatbuffers.Builder(1024)
    # operator codes: one per builtin kind, one per custom op name
    kinds = sorted({(op.kind, op.custom_code or "" if op.kind == "CUSTOM" else "") for op in graph.ops})
    for kind, _ in kinds:
        if kind not in BUILTIN_OP_CODES:
            raise RefnetError(f"cannot write op kind {kind!r}")

    # Buffers: 0 is the empty sentinel, then one per constant tensor.
    buffer_offsets = []
    M = tflite
    M.BufferStart(b)
    buffer_offsets.append(M.BufferEnd(b))
    tensor_buffer = {}
    for t in graph.tensors:
        if t.data is None:
            continue
        raw = np.ascontiguousarray(t.data, dtype=t.dtype.newbyteorder("<")).view(np.uint8).ravel()
        b.StartVector(1, raw.size, 16)  # 16-byte alignment, as the converter does
        b.head = b.head - raw.size
        b.Bytes[b.head:b.head + raw.size] = raw.tobytes()
        vec = b.EndVector()
        M.BufferStart(b)
        M.BufferAddData(b, vec)
        tensor_buffer[t.index] = len(buffer_offsets)
        buffer_offsets.append(M.BufferEnd(b))

    tensor_offsets = []
    for t in graph.tensors:
        name = b.CreateString(t.name)
        shape = _int_vector(b, t.shape)
        quant = _write_quantization(b, t.quantization) if t.quantization is not None else None
        T = tflite
        T.TensorStart(b)
        T.TensorAddShape(b, shape)
        T.TensorAddType(b, DTYPE_TO_TENSOR_TYPE[np.dtype(t.dtype)])
        T.TensorAddBuffer(b, tensor_buffer.get(t.index, 0))
        T.TensorAddName(b, name)
        if quant is not None:
            T.TensorAddQuantization(b, quant)
        tensor_offsets.append(T.TensorEnd(b))

    op_offsets = []
    for op in graph.ops:
        inputs = _int_vector(b, op.inputs)
        outputs = _int_vector(b, op.outputs)
        custom = op.kind == "CUSTOM"
        opt_type, opt = (0, None) if custom else _write_options(b, op.kind, op.options)
        custom_options = None
        if custom and op.options.get("custom_options"):
            custom_options = b.CreateByteVector(bytes(op.options["custom_options"]))
        O = tflite
        O.OperatorStart(b)
        O.OperatorAddOpcodeIndex(b, kinds.index((op.kind, op.custom_code or "" if custom else "")))
        if custom_options is not None:
            O.OperatorAddCustomOptions(b, custom_options)
        O.OperatorAddInputs(b, inputs)
        O.OperatorAddOutputs(b, outputs)
        if opt_type:
            O.OperatorAddBuiltinOptionsType(b, opt_type)
            O.OperatorAddBuiltinOptions(b, opt)
        op_offsets.append(O.OperatorEnd(b))

    def table_vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    S = tflite
    tensors_vec = table_vector(tensor_offsets)
    ops_vec = table_vector(op_offsets)
    in_vec = _int_vector(b, graph.inputs)
    out_vec = _int_vector(b, graph.outputs)
    sg_name = b.CreateString("main")
    S.SubGraphStart(b)
    S.SubGraphAddTensors(b, tensors_vec)
    S.SubGraphAddInputs(b, in_vec)
    S.SubGraphAddOutputs(b, out_vec)
    S.SubGraphAddOperators(b, ops_vec)
    S.SubGraphAddName(b, sg_name)
    subgraph = S.SubGraphEnd(b)

    code_offsets = []
    versions = {}
    for op in graph.ops:
        key = (op.kind, op.custom_code or "" if op.kind == "CUSTOM" else "")
        versions[key] = max(versions.get(key, 1), op.version)
    custom_names = {key: b.CreateString(key[1]) for key in kinds if key[0] == "CUSTOM"}
    for key in kinds:
        code = BUILTIN_OP_CODES[key[0]]
        C = tflite
        C.OperatorCodeStart(b)
        if key in custom_names:
            C.OperatorCodeAddCustomCode(b, custom_names[key])
        C.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        C.OperatorCodeAddBuiltinCode(b, code)
        C.OperatorCodeAddVersion(b, versions[key])
        code_offsets.append(C.OperatorCodeEnd(b))

    codes_vec = table_vector(code_offsets)
    subgraphs_vec = table_vector([subgraph])
    buffers_vec = table_vector(buffer_offsets)
    desc = b.CreateString(graph.description or "refnet tflite_writer")
    Mo = tflite
    Mo.ModelStart(b)
    Mo.ModelAddVersion(b, 3)
    Mo.ModelAddOperatorCodes(b, codes_vec)
    Mo.ModelAddSubgraphs(b, subgraphs_vec)
    Mo.ModelAddDescription(b, desc)
    Mo.ModelAddBuffers(b, buffers_vec)
    model = Mo.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


class ModelBuilder:
    """Convenience for tests: add tensors and ops, get .tflite bytes.

    >>> mb = ModelBuilder()
    >>> x = mb.tensor("x", (1, 8, 8, 3), np.int8, scale=0.1, zero_point=-3)
    """

    def __init__(self):
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def tensor(self, name, shape, dtype, data=None, scale=None, zero_point=None, axis=0) -> int:
        quant = None
        if scale is not None:
            scale = np.atleast_1d(np.asarray(scale, np.float32))
            zp = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, np.int64))
            if zp.size == 1 and scale.size > 1:
                zp = np.repeat(zp, scale.size)
            quant = Quantization(scale=scale, zero_point=zp, axis=axis)
        dtype = np.dtype(dtype)
        if data is not None:
            data = np.asarray(data, dtype=dtype).reshape(shape)
        self.tensors.append(Tensor(index=len(self.tensors), name=name, shape=tuple(int(s) for s in shape),
                                   dtype=dtype, data=data, quantization=quant))
        return len(self.tensors) - 1

    def input(self, *args, **kw) -> int:
        i = self.tensor(*args, **kw)
        self.inputs.append(i)
        return i

    def op(self, kind, inputs, outputs, version=1, custom_code=None, **options) -> None:
        """A builtin op with its options, or kind "CUSTOM" with custom_code and custom_options (bytes)."""
        self.ops.append(Op(index=len(self.ops), kind=kind, inputs=tuple(inputs), outputs=tuple(outputs),
                           options=options, version=version, custom_code=custom_code))

    def graph(self) -> Graph:
        return Graph(tensors=self.tensors, ops=self.ops, inputs=tuple(self.inputs),
                     outputs=tuple(self.outputs), source="<ModelBuilder>")

    def build(self) -> bytes:
        return write_tflite(self.graph())
