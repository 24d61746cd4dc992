"""Reports of a verification (refnet/verify.py's PathReports): JSON, a plot, a self-contained HTML page.

The terminal table is refnet/cli.py's; everything a file carries is here.
"""
from __future__ import annotations

import dataclasses

from .verify import PathReport

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
