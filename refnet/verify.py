"""Op-by-op verification of a model against LiteRT's CPU paths.

For each LiteRT path (reference, optimized, xnnpack) refnet runs the model under the matching
profile and compares every op's outputs with LiteRT's (np.array_equal). In isolated mode each op
runs in refnet on LiteRT's own input tensors for that op, so a divergence is charged to the op
that made it. For a divergent op, refnet re-runs it under the requantization forms it knows and
names the one that reproduces LiteRT's bits.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import ops as ops_registry
from .errors import InputError
from .graph import Graph
from .interpreter import Interpreter
from .litert import LITERT_RESOLVERS, run_litert
from .profile import FORM_NAMES, get_profile

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


def _ordered_float_bits(a: np.ndarray) -> np.ndarray:
    """Map float32 bit patterns to integers that are ordered like the floats (for ULP distance)."""
    bits = a.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _accumulate(row: OpRow, ours: np.ndarray | None, theirs: np.ndarray | None, scale: float) -> None:
    if ours is None or theirs is None or ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        n = theirs.size if theirs is not None else (ours.size if ours is not None else 0)
        row.mismatched += max(n, 1)
        row.total += max(n, 1)
        row.max_diff_real = float("inf")
        return
    if ours.dtype.kind == "f":
        same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    else:
        same = ours == theirs
    row.total += ours.size
    mism = int(ours.size - np.count_nonzero(same))
    row.mismatched += mism
    if not mism:
        return
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))[~same]
    if ours.dtype.kind in "iu":
        row.max_diff_steps = max(row.max_diff_steps, float(diff.max()))
        row.max_diff_real = max(row.max_diff_real, float(diff.max()) * (scale or 1.0))
    else:
        finite = diff[np.isfinite(diff)]
        row.max_diff_real = max(row.max_diff_real, float(finite.max()) if finite.size else float("inf"))
        if ours.dtype == np.float32:
            ulp = np.abs(_ordered_float_bits(ours) - _ordered_float_bits(theirs))[~same]
            row.max_ulp = max(row.max_ulp, int(ulp.max()))


def _rows_for(graph: Graph) -> list[OpRow]:
    rows = []
    for op in graph.ops:
        for t in op.outputs:
            rows.append(OpRow(op=op.index, kind=op.kind, tensor=t, name=graph.tensors[t].name))
    return rows


def _scale(graph: Graph, t: int) -> float:
    q = graph.tensors[t].quantization
    return float(q.scale[0]) if q is not None else 0.0


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
        ctx.params = ops_registry.REGISTRY[ctx.op.kind].prepare(ctx)
    inputs = []
    for t in ctx.op.inputs:
        if t < 0:
            inputs.append(None)
        elif interp.graph.tensors[t].is_constant:
            inputs.append(interp.graph.tensors[t].data)
        else:
            inputs.append(tensors.get(t))
    return ops_registry.REGISTRY[ctx.op.kind].run(ctx, inputs)


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
    for form, description in FORM_NAMES.items():
        candidate = dataclasses.replace(base, name=f"{base.name}+{form}",
                                        rounding_by_op={**others, op.kind: form})
        try:
            outs = run_op_isolated(interp, op_index, theirs, profile=candidate)
        except Exception:  # a form the op cannot take: not the cause
            continue
        if all(theirs.get(t) is not None and np.array_equal(o, theirs[t], equal_nan=o.dtype.kind == "f")
               for t, o in zip(op.outputs, outs)):
            if form == own_form:
                return f"{description} (refnet's own profile: the difference is upstream or elsewhere)"
            matches.append(description)
    if matches:  # several forms can agree on the data seen; all of them are named
        return " | ".join(matches)
    return "none known"


def verify_path(content: bytes, inputs_list: list[list], path: str, isolated: bool,
                progress=None, litert_outputs: list[dict] | None = None,
                refnet_profile: str | None = None) -> PathReport:
    """Compare refnet with LiteRT path `path` over several input sets. refnet runs under the
    profile of the same name unless `refnet_profile` names another (e.g. "reference", to see
    where a path departs from the reference arithmetic and why)."""
    note = None
    try:
        profile = get_profile(refnet_profile or path)
        if refnet_profile and refnet_profile != path:
            note = f"refnet arithmetic: {refnet_profile} profile"
    except InputError:  # no profile for that path yet: compare with the reference arithmetic
        profile = get_profile("reference")
        note = f"refnet has no '{path}' profile yet: compared with refnet's reference arithmetic"
    interp = Interpreter(model_content=content, experimental_preserve_all_tensors=True, profile=profile)
    interp.allocate_tensors()
    graph = interp.graph
    report = PathReport(path, "isolated" if isolated else "whole", rows=_rows_for(graph), note=note)
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
                    _accumulate(row, o, theirs.get(t), _scale(graph, t))
                    if row.mismatched > before and row.cause is None:
                        row.cause = name_cause(interp, op.index, theirs)
        else:
            ours = run_all_tensors(interp, inputs)
            for row in report.rows:
                _accumulate(row, ours.get(row.tensor), theirs.get(row.tensor), _scale(graph, row.tensor))
        if progress is not None:
            progress.update(1)
    return report


def report_to_json(model: str, inputs_desc: list[str], reports: list[PathReport]) -> dict:
    return {
        "model": model,
        "inputs": inputs_desc,
        "all_equal": all(r.equal for r in reports),
        "paths": [
            {
                "path": r.path,
                "mode": r.mode,
                "error": r.error,
                "note": r.note,
                "tensors_equal": r.tensors_equal,
                "tensors_compared": r.tensors_compared,
                "first_divergent_op": r.first_divergent_op,
                "ops": [dataclasses.asdict(row) for row in r.rows],
            }
            for r in reports
        ],
    }


def mismatch_plot_png(reports: list[PathReport]) -> bytes:
    """PNG of the mismatch rate by op index, one line per path (matplotlib, Agg backend)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    for r in reports:
        if r.error:
            continue
        rates = {}
        for row in r.rows:
            rates[row.op] = max(rates.get(row.op, 0.0), row.rate)
        xs = sorted(rates)
        ax.plot(xs, [100 * rates[x] for x in xs], marker=".", label=f"{r.path} ({r.mode})")
    ax.set_xlabel("op index")
    ax.set_ylabel("elements differing (%)")
    ax.set_title("refnet vs LiteRT: mismatch rate by op")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def report_to_html(model: str, inputs_desc: list[str], reports: list[PathReport]) -> str:
    """A self-contained page: summary, the plot (embedded PNG) and one table per path."""
    import base64
    import html

    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>refnet verify: "
        f"{esc(model)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #ccc;"
        "padding:2px 8px;text-align:right}th{background:#eee}tr.bad td{background:#fde}"
        "tr.first td{background:#fbb;font-weight:bold}td.l{text-align:left}</style></head><body>",
        f"<h1>refnet verify</h1><p>model <code>{esc(model)}</code>; {len(inputs_desc)} input(s): "
        f"{esc(', '.join(inputs_desc[:10]))}{' ...' if len(inputs_desc) > 10 else ''}</p>",
        "<table id='summary'><tr><th>path</th><th>mode</th><th>tensors equal / compared</th>"
        "<th>first divergent op</th></tr>",
    ]
    for r in reports:
        status = esc(r.error) if r.error else f"{r.tensors_equal} / {r.tensors_compared}"
        parts.append(f"<tr><td class='l'>{esc(r.path)}</td><td class='l'>{r.mode}</td><td>{status}</td>"
                     f"<td>{'' if r.first_divergent_op is None else r.first_divergent_op}</td></tr>")
    parts.append("</table>")
    try:
        png = base64.b64encode(mismatch_plot_png(reports)).decode()
        parts.append(f"<img alt='mismatch rate by op' src='data:image/png;base64,{png}'>")
    except ImportError:
        parts.append("<p>(plot omitted: pip install matplotlib)</p>")
    for r in reports:
        if r.error:
            continue
        parts.append(f"<h2>{esc(r.path)} ({r.mode})</h2><table class='ops'><tr><th>op</th><th>kind</th>"
                     "<th>tensor</th><th class='l'>name</th><th>mismatched / total</th>"
                     "<th>max diff (steps)</th><th>max diff (real)</th><th>max ULP</th><th>cause</th></tr>")
        first = r.first_divergent_op
        for row in r.rows:
            cls = "first" if row.op == first and not row.equal else ("bad" if not row.equal else "")
            parts.append(
                f"<tr class='{cls}'><td>{row.op}</td><td class='l'>{row.kind}</td><td>{row.tensor}</td>"
                f"<td class='l'>{esc(row.name[:80])}</td><td>{row.mismatched} / {row.total}</td>"
                f"<td>{row.max_diff_steps:g}</td><td>{row.max_diff_real:.3g}</td><td>{row.max_ulp}</td>"
                f"<td class='l'>{esc(row.cause or '')}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
