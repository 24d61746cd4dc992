"""Terminal output shared by the commands."""
from __future__ import annotations

import sys


def print_table(headers: list[str], rows: list[list], out=None) -> None:
    out = out or sys.stdout  # looked up at call time (tests and callers may redirect it)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    print(line, file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)), file=out)
