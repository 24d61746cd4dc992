"""Reports of a verification (refnet/verify.py's PathReports): JSON, Model Explorer node data, an
SVG plot and a self-contained HTML page.

The terminal table is refnet/cli.py's; everything a file carries is here. No plotting library:
the plot is SVG drawn here, so every report has it.
"""
from __future__ import annotations

import dataclasses
import html

from .graph import Graph
from .verify import PathReport

PATH_COLOURS = {"reference": "#1f77b4", "optimized": "#d62728", "xnnpack": "#2ca02c"}
EQUAL_BG, DIFFER_BG, FIRST_BG = "#c8ebd0", "#f6c2c2", "#e06060"


def _top1_json(r: PathReport) -> list[dict]:
    return [{"litert": None if t is None else {"class": t[0], "score": t[1]},
             "refnet_reference": {"class": ref[0], "score": ref[1]}}
            for t, ref in zip(r.top1, r.top1_reference)]


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
                "top1": _top1_json(r),
                "ops": [dataclasses.asdict(row) for row in r.rows],
            }
            for r in reports
        ],
    }


def model_explorer_graph_id(graph: Graph) -> str:
    """The id Model Explorer's TFLite adapter gives subgraph 0: its name, else the key of the
    signature that runs it, else "main"."""
    if graph.subgraph_name:
        return graph.subgraph_name
    key = next((k for k, s in graph.signatures.items() if s.subgraph == 0 and k), None)
    return key or "main"


def op_mismatch_percent(report: PathReport) -> dict[int, float]:
    """Per op (in op order): the % of its output elements that differ, the worst of its outputs."""
    rates: dict[int, float] = {}
    for row in report.rows:
        rates[row.op] = max(rates.get(row.op, 0.0), 100.0 * row.rate)
    return dict(sorted(rates.items()))


def model_explorer_node_data(graph: Graph, report: PathReport) -> dict:
    """One path's per-op result as Model Explorer node data: each op node (id = its index) gets the
    % of its output elements that differ from LiteRT, green when bit-exact, red when not, dark red
    for the first divergent op."""
    first = report.first_divergent_op
    results = {}
    for op, rate in op_mismatch_percent(report).items():
        entry = {"value": round(rate, 4)}
        if op == first:
            entry["bgColor"] = FIRST_BG
        results[str(op)] = entry
    return {model_explorer_graph_id(graph): {
        "name": f"refnet vs LiteRT {report.path} ({report.mode}): % of output elements differing",
        "results": results,
        "thresholds": [{"value": 0, "bgColor": EQUAL_BG}, {"value": 100, "bgColor": DIFFER_BG}],
    }}


def mismatch_plot_svg(reports: list[PathReport]) -> str:
    """Inline SVG: % of elements differing by op index, one line per path and mode; the legend
    sits in its own column to the right of the data."""
    width, height, left, top, plot_w, plot_h = 1040, 300, 56, 16, 620, 236
    series = []
    for r in reports:
        if r.error or not r.rows:
            continue
        series.append((r, list(op_mismatch_percent(r).items())))
    last_op = max((pts[-1][0] for _, pts in series), default=1) or 1
    peak = max((rate for _, pts in series for _, rate in pts), default=0.0)
    y_max = next(v for v in (1, 5, 10, 25, 50, 100) if v >= peak)

    def x(op):
        return left + plot_w * op / last_op

    def y(rate):
        return top + plot_h * (1 - rate / y_max)

    parts = [f"<svg id='plot' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='12'>",
             f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fafafa' stroke='#999'/>"]
    for k in range(6):  # y grid and labels
        v = y_max * k / 5
        parts.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#ddd'/>"
                     f"<text x='{left - 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:g}</text>")
    step = max(1, round(last_op / 10))
    for op in range(0, last_op + 1, step):  # x ticks
        parts.append(f"<text x='{x(op):.1f}' y='{top + plot_h + 16}' text-anchor='middle'>{op}</text>")
    parts.append(f"<text x='{left + plot_w / 2}' y='{height - 4}' text-anchor='middle'>op index</text>"
                 f"<text transform='translate(14 {top + plot_h / 2}) rotate(-90)' text-anchor='middle'>"
                 f"elements differing (%)</text>")
    for n, (r, pts) in enumerate(series):
        colour = PATH_COLOURS.get(r.path, "#555")
        dash = " stroke-dasharray='5 3'" if r.mode == "isolated" else ""
        line = " ".join(f"{x(op):.1f},{y(rate):.1f}" for op, rate in pts)
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.6'{dash} points='{line}'/>")
        ly = top + 14 + 20 * n
        lx = left + plot_w + 24
        verdict = "bit-exact" if r.equal else f"departs at op {r.first_divergent_op}"
        parts.append(f"<line x1='{lx}' x2='{lx + 24}' y1='{ly - 4}' y2='{ly - 4}' stroke='{colour}' "
                     f"stroke-width='2'{dash}/><text x='{lx + 30}' y='{ly}' class='legend'>"
                     f"{html.escape(r.path)} ({r.mode}): {verdict}</text>")
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body{font-family:sans-serif;margin:1.5em 2em;max-width:1400px;color:#222}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.4em 0 1em} td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right;vertical-align:top} th{background:#eee;text-align:left} td.l{text-align:left}
td.name{text-align:left;max-width:26em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
td.cause{text-align:left;min-width:22em;max-width:44em}
tr.equal td.verdict{background:#c8ebd0} tr.differs td.verdict{background:#f6c2c2}
tr.first td{background:#f6c2c2;font-weight:bold} tr.bad td{background:#fde8e8}
details{margin:.3em 0} summary{cursor:pointer;color:#335}
p.note{color:#555;margin:.2em 0}
"""


def _summary_row(r: PathReport) -> str:
    esc = html.escape
    if r.error:
        return (f"<tr class='differs'><td class='l'>{esc(r.path)}</td><td class='l'>{r.mode}</td>"
                f"<td class='l verdict' colspan='4'>{esc(r.error)}</td></tr>")
    first = next((row for row in r.rows if not row.equal), None)
    if first is None:
        verdict, why = "bit-exact on every tensor", ""
    else:
        verdict = f"departs at op {first.op} ({first.kind})"
        why = first.cause or ("run with --isolated to name the arithmetic" if r.mode == "whole" else "")
    top = ""
    if r.top1:
        pairs = [(t, ref) for t, ref in zip(r.top1, r.top1_reference) if t is not None]
        if len(pairs) == 1:
            (c, score), (rc, rscore) = pairs[0]
            top = f"class {c}, score {score:g} (refnet reference: {rc}, {rscore:g})"
        else:
            top = f"equal to refnet reference on {sum(t[0] == ref[0] for t, ref in pairs)}/{len(pairs)} inputs"
    cls = "equal" if first is None else "differs"
    return (f"<tr class='{cls}'><td class='l'>{esc(r.path)}</td><td class='l'>{r.mode}</td>"
            f"<td class='l verdict'>{esc(verdict)}</td><td>{r.tensors_equal} / {r.tensors_compared}</td>"
            f"<td class='cause'>{esc(why)}</td><td class='l'>{esc(top)}</td></tr>")


def _ops_table(r: PathReport, rows) -> str:
    esc = html.escape
    first = r.first_divergent_op
    out = ["<table class='ops'><tr><th>op</th><th>kind</th><th>tensor</th><th>name</th>"
           "<th>mismatched / total</th><th>first at</th><th>max diff (steps)</th><th>max diff (real)</th>"
           "<th>max ULP</th><th>cause</th></tr>"]
    for row in rows:
        cls = "first" if row.op == first and not row.equal else ("bad" if not row.equal else "")
        at = "" if row.first_mismatch is None else ",".join(map(str, row.first_mismatch))
        out.append(
            f"<tr class='{cls}'><td>{row.op}</td><td class='l'>{row.kind}</td><td>{row.tensor}</td>"
            f"<td class='name' title='{esc(row.name)}'>{esc(row.name.split(';')[0])}</td><td>{row.mismatched} / {row.total}</td><td>{at}</td>"
            f"<td>{row.max_diff_steps:g}</td><td>{row.max_diff_real:.3g}</td><td>{row.max_ulp}</td>"
            f"<td class='cause'>{esc(row.cause or '')}</td></tr>")
    out.append("</table>")
    return "".join(out)


def report_to_html(model: str, inputs_desc: list[str], reports: list[PathReport]) -> str:
    """A self-contained page, in the order people read it: the verdict per path (where it departs,
    why, top-1), the plot, the divergent ops, and every op's table collapsed at the end."""
    esc = html.escape
    shown = ", ".join(inputs_desc[:10]) + (" ..." if len(inputs_desc) > 10 else "")
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>refnet verify: {esc(model)}</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>refnet verify</h1><p class='note'>model <code>{esc(model)}</code>; {len(inputs_desc)} "
        f"input(s): {esc(shown)}</p>",
        "<h2>Summary</h2><table id='summary'><tr><th>LiteRT path</th><th>mode</th><th>verdict</th>"
        "<th>tensors equal / compared</th><th>why (first divergent op)</th><th>top-1</th></tr>",
        *(_summary_row(r) for r in reports),
        "</table>",
        "<h2>Where the outputs differ</h2>", mismatch_plot_svg(reports),
        "<section id='divergent'>",
    ]
    divergent = [r for r in reports if not r.error and any(not row.equal for row in r.rows)]
    if not divergent:
        parts.append("<p>Every compared tensor is bit-exact on every path.</p>")
    for r in divergent:
        bad = [row for row in r.rows if not row.equal]
        parts.append(f"<h2>{esc(r.path)} ({r.mode}): {len(bad)} divergent op output(s)</h2>")
        if r.note:
            parts.append(f"<p class='note'>{esc(r.note)}</p>")
        parts.append(_ops_table(r, bad))
    parts.append("</section><section id='all-ops'><h2>Every op output</h2>")
    for r in reports:
        if r.error:
            continue
        parts.append(f"<details><summary>{esc(r.path)} ({r.mode}): {r.tensors_equal} / "
                     f"{r.tensors_compared} bit-exact</summary>{_ops_table(r, r.rows)}</details>")
    parts.append("</section>"
                 # the rendered height, for the report's own test in headless Chromium
                 "<script>document.documentElement.dataset.pageHeight=document.body.scrollHeight</script>"
                 "</body></html>")
    return "\n".join(parts)
