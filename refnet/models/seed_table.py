"""The seed's published table (weights/manifest.json) against refnet's counts.

A row is met when refnet's count is within 2 % of the published value, or when the published
value is refnet's count truncated the way the seed rounds (MACs to whole millions, params to the
published number of decimals) - see refnet.models.counting. Rows that are met neither way are
listed in UNMET with the reason.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .counting import count, elementwise_ops
from .spec import ArchSpec
from . import get_net

MANIFEST = Path(__file__).resolve().parents[2] / "weights" / "manifest.json"
TOLERANCE = 0.02

# checkpoint -> why refnet cannot meet the published value (the quantity that differs)
UNMET = {
    "v3-small_224_1.0_float": (
        "MACs and params: the README's 66 M / 2.9 M do not describe the seed's own V3_SMALL "
        "definition (slim mobilenet_v3.py), which counts 56.5 M MACs and 2.53 M params; "
        "keras.applications' MobileNetV3Small, with the same layers, has exactly refnet's "
        "variables (tested). No counting convention closes 9.5 M MACs: all element-wise work of "
        "the net (bias, activations, adds, SE gates, pooling) is 2.1 M. The 0.75 row of the same table scales consistently with the "
        "definition (43.4 M vs 44 M)."),
    "v3-small_224_0.75_float": (
        "params: published 2.4 M, the definition (and Keras's MobileNetV3Small(alpha=0.75)) "
        "has 2.03 M weights+biases (2.05 M with batch norm); MACs are met."),
    "v3-small-minimalistic_224_1.0_float": (
        "MACs: published 65 M, the seed's V3_SMALL_MINIMALISTIC definition counts 52.3 M (the "
        "3x3-everywhere, SE-free Small); params (2.03 M vs 2.0 M) are met. Same gap, same "
        "source as the Small 1.0 row."),
}


def load_manifest(path: Path = MANIFEST) -> list[dict]:
    return json.loads(Path(path).read_text())["rows"]


def _decimals(x: float) -> int:
    s = repr(float(x))
    return len(s.split(".")[1].rstrip("0")) if "." in s else 0


def _truncated(value: float, published: float, decimals: int) -> bool:
    f = 10 ** decimals
    return math.floor(value * f + 1e-9) == round(published * f)


def compare_row(row: dict) -> dict:
    spec = ArchSpec(row["arch"], row["depth_multiplier"], row["resolution"],
                    finegrain_classification_mode=row.get("finegrain_classification_mode", False))
    net = get_net(spec)
    c = count(net)
    macs_m, params_m = c["macs"] / 1e6, c["params"] / 1e6
    macs_err = macs_m / row["macs_m"] - 1
    params_err = params_m / row["params_m"] - 1
    macs_ok = abs(macs_err) <= TOLERANCE or _truncated(macs_m, row["macs_m"], 0)
    params_ok = abs(params_err) <= TOLERANCE or \
        _truncated(params_m, row["params_m"], max(1, _decimals(row["params_m"])))
    return dict(checkpoint=row["checkpoint"], arch=row["arch"], dm=row["depth_multiplier"],
                resolution=row["resolution"], seed_macs_m=row["macs_m"], macs_m=macs_m,
                macs_err=macs_err, macs_ok=macs_ok, seed_params_m=row["params_m"],
                params_m=params_m, params_err=params_err, params_ok=params_ok,
                elementwise_m=elementwise_ops(net) / 1e6, note=UNMET.get(row["checkpoint"], ""))


def table() -> list[dict]:
    return [compare_row(r) for r in load_manifest()]


def format_table(rows: list[dict]) -> str:
    head = f"{'checkpoint':38s} {'seed MACs':>9s} {'refnet':>8s} {'err':>7s}  {'seed P':>6s} {'refnet':>6s} {'err':>7s}  met"
    lines = [head, "-" * len(head)]
    for r in rows:
        if not (r["macs_ok"] and r["params_ok"]):
            met = "NO (see note)"
        elif max(abs(r["macs_err"]), abs(r["params_err"])) <= TOLERANCE:
            met = "yes, within 2%"
        else:
            met = "yes, seed truncates"
        lines.append(f"{r['checkpoint']:38s} {r['seed_macs_m']:9g} {r['macs_m']:8.2f} "
                     f"{100 * r['macs_err']:+6.1f}%  {r['seed_params_m']:6g} {r['params_m']:6.3f} "
                     f"{100 * r['params_err']:+6.1f}%  {met}")
    return "\n".join(lines)
