"""Run and verify a model up to an op refnet (or LiteRT) cannot run.

A pose model ending in a vendor's custom op (e.g. PosenetDecoderOp) is ordinary MobileNet up to
that op. cut_before(content, N) returns a copy of the .tflite that runs ops 0..N-1 of its first
subgraph and outputs the tensors those ops hand to the ops after the cut (and any model output
they produce). The copy is the file itself with two edits, so every op, option, buffer and
quantization is byte for byte the original's and tensor indexes stay the file's:
  - the subgraph's operators vector keeps its first N entries (its length field lowered);
  - the subgraph's outputs field points at a new vector appended at the end of the file
    (flatbuffer offsets point forward, so a vector after everything else is valid).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import InvalidModelError, RefnetError
from .graph import Graph

# SubGraph's vtable slots (schema.fbs field order: tensors, inputs, outputs, operators, name).
_SLOT_OUTPUTS, _SLOT_OPERATORS = 8, 10


@dataclass
class Cut:
    content: bytes  # the cut model
    op_index: int  # ops 0..op_index-1 are kept
    outputs: list[int]  # its output tensors (indexes of the original file)


def first_unsupported_needed(graph: Graph, supported) -> int | None:
    """The first op (in execution order) refnet cannot run that some model output depends on."""
    needed = ops_needed_for(graph, graph.outputs)
    for op in graph.ops:
        if op.index in needed and not supported(op):
            return op.index
    return None


def ops_needed_for(graph: Graph, tensors) -> set[int]:
    """Indexes of the ops the given tensors depend on (transitively)."""
    producer = {t: op for op in graph.ops for t in op.outputs}
    needed, todo = set(), [t for t in tensors if t >= 0]
    while todo:
        op = producer.get(todo.pop())
        if op is None or op.index in needed:
            continue
        needed.add(op.index)
        todo.extend(t for t in op.inputs if t >= 0)
    return needed


def frontier(graph: Graph, op_index: int) -> list[int]:
    """Tensors made by ops before `op_index` that an op from `op_index` on reads, or that the model
    outputs: the outputs of the cut, in index order."""
    made = {t for op in graph.ops[:op_index] for t in op.outputs}
    read_later = {t for op in graph.ops[op_index:] for t in op.inputs if t >= 0}
    return sorted(t for t in made if t in read_later or t in set(graph.outputs))


def cut_before(content: bytes, graph: Graph, op_index: int) -> Cut:
    """The model `content` (read as `graph`) cut before op `op_index` (see the module docstring)."""
    if not 1 <= op_index <= len(graph.ops):
        raise RefnetError(f"{graph.source}: --until-op {op_index}: the model has ops 0..{len(graph.ops) - 1}; "
                          f"give 1..{len(graph.ops)} (the first op not run)")
    outputs = frontier(graph, op_index)
    if not outputs:
        raise RefnetError(f"{graph.source}: cut before op {op_index}, no tensor made before it is read after it")
    buf = bytearray(content)
    subgraph = _subgraph0(buf, graph)
    ops_field = _field(buf, subgraph, _SLOT_OPERATORS, graph, "operators")
    ops_vector = ops_field + _u32(buf, ops_field)
    if _u32(buf, ops_vector) != len(graph.ops):
        raise InvalidModelError(f"{graph.source}: the operators vector does not hold the {len(graph.ops)} ops read")
    struct.pack_into("<I", buf, ops_vector, op_index)
    out_field = _field(buf, subgraph, _SLOT_OUTPUTS, graph, "outputs")
    buf.extend(b"\0" * (-len(buf) % 4))
    new_vector = len(buf)
    buf.extend(struct.pack(f"<I{len(outputs)}i", len(outputs), *outputs))
    struct.pack_into("<I", buf, out_field, new_vector - out_field)
    return Cut(bytes(buf), op_index, outputs)


def _u32(buf, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _subgraph0(buf, graph: Graph) -> int:
    """Position of the first SubGraph table (Model field 2, subgraphs)."""
    model = _u32(buf, 0)
    subgraphs_field = _field(buf, model, 8, graph, "subgraphs")
    vector = subgraphs_field + _u32(buf, subgraphs_field)
    first = vector + 4
    return first + _u32(buf, first)


def _field(buf, table: int, slot: int, graph: Graph, what: str) -> int:
    """Position of a table's field (its stored offset), from the table's vtable."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    rel = struct.unpack_from("<H", buf, vtable + slot)[0] if slot < vt_size else 0
    if rel == 0:
        raise InvalidModelError(f"{graph.source}: the subgraph has no {what} field")
    return table + rel
