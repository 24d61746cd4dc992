"""Op-by-op verification of a model against LiteRT's CPU paths.

For each LiteRT path (reference, optimized, xnnpack) refnet runs the model under the matching
profile and compares every op's outputs with LiteRT's bit for bit (refnet/bits.py). In isolated mode each op
runs in refnet on LiteRT's own input tensors for that op, so a divergence is charged to the op
that made it. For a divergent op, refnet re-runs it under the requantization forms it knows and
names the one that reproduces LiteRT's bits.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import bits
from . import ops as ops_registry
from .errors import InputError
from .graph import Graph
from .interpreter import Interpreter
from .litert import LITERT_RESOLVERS, run_litert
from .forms import Form
from .profile import get_profile
from .tflite_reader import read_tflite

PATHS = tuple(LITERT_RESOLVERS)


@dataclass
class OpRow:
    """One op's outputs compared over every input of a run."""

    op: int
    kind: str
    tensor: int
    name: str
    mismatched: int = 0
    total: int = 0
    max_diff_steps: float = 0.0  # quantized outputs: max |refnet - litert| in quantized steps
    max_diff_real: float = 0.0  # the same in real units (steps x scale), or float difference
    max_ulp: int = 0  # float outputs: max distance in units in the last place
    cause: str | None = None  # isolated mode: the arithmetic that reproduces LiteRT's bits
    first_mismatch: tuple | None = None  # coordinates of the first differing element seen
    first_input: int | None = None  # the input set (index) it was seen on

    @property
    def equal(self) -> bool:
        return self.mismatched == 0

    @property
    def rate(self) -> float:
        return self.mismatched / self.total if self.total else 0.0


@dataclass
class PathReport:
    path: str
    mode: str  # "whole" or "isolated"
    rows: list[OpRow] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    refnet_profile: str | None = None  # the profile refnet ran (a short name or an id); None: `path`'s
    # classifier models: (class, raw score) of the top-1 per input, LiteRT's path and refnet's reference
    top1: list[tuple[int, float] | None] = field(default_factory=list)
    top1_reference: list[tuple[int, float]] = field(default_factory=list)

    @property
    def tensors_compared(self) -> int:
        return len(self.rows)

    @property
    def tensors_equal(self) -> int:
        return sum(r.equal for r in self.rows)

    @property
    def first_divergent_op(self) -> int | None:
        return next((r.op for r in self.rows if not r.equal), None)

    @property
    def equal(self) -> bool:
        return self.error is None and all(r.equal for r in self.rows)


def _accumulate(row: OpRow, ours: np.ndarray | None, theirs: np.ndarray | None, scale: float,
                input_index: int = 0) -> None:
    """Add one input's comparison of a tensor (bit for bit, refnet/bits.py) to its row."""
    d = bits.compare(ours, theirs)
    row.total += d.total
    row.mismatched += d.mismatched
    if d.equal:
        return
    if d.reason is not None:  # missing, or dtype / shape differ
        row.max_diff_real = float("inf")
        return
    if row.first_mismatch is None:
        row.first_mismatch = d.first
        row.first_input = input_index
    if ours.dtype.kind in "iu":
        row.max_diff_steps = max(row.max_diff_steps, d.max_abs_diff)
        row.max_diff_real = max(row.max_diff_real, d.max_abs_diff * (scale or 1.0))
    else:
        row.max_diff_real = max(row.max_diff_real, d.max_abs_diff)
        row.max_ulp = max(row.max_ulp, d.max_ulp)


def _rows_for(graph: Graph) -> list[OpRow]:
    rows = []
    for op in graph.ops:
        for t in op.outputs:
            rows.append(OpRow(op=op.index, kind=op.kind, tensor=t, name=graph.tensors[t].name))
    return rows


def dequantized(values: np.ndarray, detail: dict) -> np.ndarray:
    """A tensor's real values (float64) from its interpreter detail's (scale, zero point)."""
    scale, zp = detail["quantization"]
    if values.dtype.kind in "iu" and scale:
        return (values.astype(np.float64) - zp) * scale
    return values.astype(np.float64)


def top_class(values: np.ndarray, detail: dict) -> tuple[int, float, float] | None:
    """A classifier output's top class of batch row 0: (class, raw value, real value); None when
    the output is not [batch, classes]."""
    if values.ndim != 2 or values.shape[-1] < 2:
        return None
    row = values[0]
    c = int(np.argmax(dequantized(row, detail)))
    return c, row[c].item(), float(dequantized(row[c:c + 1], detail)[0])


def _scale(graph: Graph, t: int) -> float:
    q = graph.tensors[t].quantization
    return float(q.scale[0]) if q is not None else 0.0


def every_tensor_an_output(content: bytes) -> bytes:
    """The model rewritten so that every activation tensor is a graph output (tensor indexes kept).

    A runtime may reuse an intermediate's buffer for a later op's output (tflite-runtime 2.14 does
    for ADD, MUL and RESHAPE even with experimental_preserve_all_tensors); outputs it must keep.
    On ai-edge-litert 2.3.0 x86-64 the rewritten model gives the same bits on every tensor, all
    three paths (the Coral V2 on cat.bmp)."""
    import dataclasses as dc

    from .litert import compared_tensor_indexes
    from .tflite_writer import write_tflite

    graph = read_tflite(model_content=content)
    inputs = set(graph.inputs)
    outputs = tuple(t for t in compared_tensor_indexes(graph) if t not in inputs)
    return write_tflite(dc.replace(graph, outputs=outputs))


def run_all_tensors(interp: Interpreter, inputs: list) -> dict[int, np.ndarray]:
    for detail, value in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], value)
    interp.invoke()
    return {t.index: interp.get_tensor(t.index) for t in interp.graph.tensors}


def run_op_isolated(interp: Interpreter, op_index: int, tensors: dict, profile=None) -> list:
    """Run one op of an allocated interpreter on the given tensors (e.g. LiteRT's own inputs)."""
    base = interp._contexts[op_index]
    ctx = base
    if profile is not None:
        ctx = dataclasses.replace(base, profile=profile)
        ctx.params = ops_registry.implementation(ctx.op).prepare(ctx)
    inputs = []
    for t in ctx.op.inputs:
        if t < 0:
            inputs.append(None)
        elif interp.graph.tensors[t].is_constant:
            inputs.append(interp.graph.tensors[t].data)
        else:
            inputs.append(tensors.get(t))
    return ops_registry.implementation(ctx.op).run(ctx, inputs)


def name_cause(interp: Interpreter, op_index: int, theirs: dict) -> str:
    """Which known arithmetic reproduces LiteRT's output of this op from LiteRT's inputs."""
    op = interp.graph.ops[op_index]
    base = interp.profile
    # The op's other keys (per dtype) would win over the candidate: drop them.
    others = {k: v for k, v in base.rounding_by_op.items()
              if k != op.kind and not (isinstance(k, tuple) and k[0] == op.kind)}
    dtype = interp.graph.tensors[op.inputs[0]].dtype if op.inputs and op.inputs[0] >= 0 else None
    own_form = base.rounding(op.kind, dtype)
    matches = []
    for form in Form:
        description = form.description
        candidate = dataclasses.replace(base, name=f"{base.name}+{form}",
                                        rounding_by_op={**others, op.kind: form})
        try:
            outs = run_op_isolated(interp, op_index, theirs, profile=candidate)
        except Exception:  # a form the op cannot take: not the cause
            continue
        if all(o is not None and theirs.get(t) is not None and bits.same_bits(o, theirs[t])
               for t, o in zip(op.outputs, outs)):
            if form == own_form:
                return f"{description} (refnet's own profile: the difference is upstream or elsewhere)"
            matches.append(description)
    if matches:  # several forms can agree on the data seen; all of them are named
        return " | ".join(matches)
    return "none known"


def verify_path(content: bytes, inputs_list: list[list], path: str, isolated: bool,
                progress=None, litert_outputs: list[dict] | None = None,
                refnet_profile: str | None = None, source: str | None = None) -> PathReport:
    """Compare refnet with LiteRT path `path` over several input sets. refnet runs under the
    profile of the same name unless `refnet_profile` names another (e.g. "reference", to see
    where a path departs from the reference arithmetic and why). `source` names the model in
    errors (the path as the user typed it)."""
    note, ran = None, refnet_profile or path
    try:
        profile = get_profile(ran)
        if ran != path:
            note = f"refnet arithmetic: {refnet_profile} profile"
    except InputError:  # no profile for that path yet: compare with the reference arithmetic
        profile, ran = get_profile("reference"), "reference"
        note = f"refnet has no '{path}' profile yet: compared with refnet's reference arithmetic"
    interp = Interpreter(graph=read_tflite(model_content=content, source=source),
                         experimental_preserve_all_tensors=True, profile=profile)
    interp.allocate_tensors()
    graph = interp.graph
    report = PathReport(path, "isolated" if isolated else "whole", rows=_rows_for(graph), note=note,
                        refnet_profile=ran)
    by_tensor = {r.tensor: r for r in report.rows}
    for k, inputs in enumerate(inputs_list):
        theirs = litert_outputs[k] if litert_outputs else run_litert(content, inputs, path=path, isolated=True)
        if isolated:
            for op in graph.ops:
                try:
                    outs = run_op_isolated(interp, op.index, theirs)
                except Exception as e:
                    outs = [None] * len(op.outputs)
                    by_tensor[op.outputs[0]].cause = f"refnet failed: {e}"
                for t, o in zip(op.outputs, outs):
                    row = by_tensor[t]
                    before = row.mismatched
                    _accumulate(row, o, theirs.get(t), _scale(graph, t), k)
                    if row.mismatched > before and row.cause is None:
                        row.cause = name_cause(interp, op.index, theirs)
        else:
            ours = run_all_tensors(interp, inputs)
            for row in report.rows:
                _accumulate(row, ours.get(row.tensor), theirs.get(row.tensor), _scale(graph, row.tensor), k)
        if progress is not None:
            progress.update(1)
    return report
