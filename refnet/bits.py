"""Bit-exactness: the one definition of "equal" that refnet uses.

Two arrays are equal when they have the same dtype, the same shape and the same bytes, element
by element: -0.0 differs from +0.0, and a NaN equals a NaN only with the same bits. verify, the
LiteRT comparison, the bit-exactness table and the tests all compare through `compare`.
Where float results differ, the report says by how much: max |difference| over the finite pairs
and max distance in units in the last place (ULP).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Difference", "compare", "same_bits", "differing", "ulp_distance"]


@dataclass(frozen=True)
class Difference:
    """What `compare(a, b)` found."""

    equal: bool  # same dtype, shape and bytes
    mismatched: int  # elements whose bits differ (every element when dtype or shape differ)
    total: int  # elements compared (b's size when dtype or shape differ)
    max_abs_diff: float = 0.0  # over the differing finite pairs (integers: in steps)
    max_ulp: int = 0  # floats: over the differing pairs (-0.0 vs +0.0 is 0 ULP apart, yet differs)
    first: tuple | None = None  # index of the first differing element
    reason: str | None = None  # "dtype int8 vs uint8", "shape [1, 2] vs [2]", or None


def _element_bits(a: np.ndarray) -> np.ndarray:
    """Each element's bytes as one unsigned integer (or as a row of bytes for odd sizes)."""
    a = np.ascontiguousarray(a)
    size = a.dtype.itemsize
    if size in (1, 2, 4, 8):
        return a.view(f"u{size}")
    return a.view(np.uint8).reshape(a.shape + (size,))


def differing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean mask of the elements whose bits differ; a and b have one dtype and one shape."""
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(f"cannot compare elements of {a.dtype}{list(a.shape)} and {b.dtype}{list(b.shape)}")
    diff = _element_bits(a) != _element_bits(b)
    return diff if diff.ndim == a.ndim else diff.any(axis=-1)


def same_bits(a, b) -> bool:
    """Same dtype, same shape, same bytes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return not differing(a, b).any()


def _ordered(a: np.ndarray) -> np.ndarray:
    """IEEE bit patterns mapped to integers ordered like the floats (-0.0 and +0.0 both 0)."""
    bits = _element_bits(a).astype(np.int64) if a.dtype.itemsize < 8 else _element_bits(a).view(np.int64)
    sign = np.int64(1) << (8 * a.dtype.itemsize - 1)
    magnitude = bits & (sign - 1)
    return np.where(bits & sign, -magnitude, magnitude)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in units in the last place, elementwise (float16/32/64 of one dtype)."""
    return np.abs(_ordered(a) - _ordered(b))


def compare(a, b) -> Difference:
    """Compare `a` (ours) with `b` (the other side) bit for bit; see Difference."""
    if a is None or b is None:
        n = max((x.size for x in (a, b) if x is not None), default=1)
        return Difference(False, max(n, 1), max(n, 1), float("inf"), reason="missing")
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        return Difference(False, max(b.size, 1), max(b.size, 1), float("inf"),
                          reason=f"dtype {a.dtype.name} vs {b.dtype.name}")
    if a.shape != b.shape:
        return Difference(False, max(b.size, 1), max(b.size, 1), float("inf"),
                          reason=f"shape {list(a.shape)} vs {list(b.shape)}")
    mask = differing(a, b)
    mismatched = int(np.count_nonzero(mask))
    if not mismatched:
        return Difference(True, 0, int(a.size))
    first = tuple(int(i) for i in np.argwhere(mask)[0])
    x, y = a[mask], b[mask]
    if a.dtype.kind in "iub":
        max_abs = float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max())
        return Difference(False, mismatched, int(a.size), max_abs, first=first)
    if a.dtype.kind == "f":
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(x.astype(np.float64) - y.astype(np.float64))
        finite = d[np.isfinite(d)]
        max_abs = float(finite.max()) if finite.size else float("inf")
        ulp = ulp_distance(x, y)
        return Difference(False, mismatched, int(a.size), max_abs, int(ulp.max()), first=first)
    return Difference(False, mismatched, int(a.size), float("nan"), first=first)
