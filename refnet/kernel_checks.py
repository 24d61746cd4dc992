"""Argument checks shared by the Cython kernels, run before any nogil loop starts.

They keep a caller's mistake a ValueError instead of an out-of-bounds read or an int32 overflow.
"""

# Offsets are bounded so that one tap's product (x + input_offset) * (w + filter_offset) fits
# in int32: (255 + 2**15)**2 < 2**31. Real offsets are -zero_point, within [-255, 128].
MAX_ABS_OFFSET = 1 << 15


def check_offset(offset: int, name: str) -> None:
    if not -MAX_ABS_OFFSET <= offset <= MAX_ABS_OFFSET:
        raise ValueError(f"{name} {offset} outside [-{MAX_ABS_OFFSET}, {MAX_ABS_OFFSET}]")


def check_window(stride_h: int, stride_w: int, dilation_h: int, dilation_w: int,
                 pad_top: int, pad_left: int) -> None:
    """Strides and dilations >= 1, paddings >= 0 (the window loops rely on all three)."""
    if stride_h < 1 or stride_w < 1:
        raise ValueError(f"strides must be >= 1, got ({stride_h}, {stride_w})")
    if dilation_h < 1 or dilation_w < 1:
        raise ValueError(f"dilations must be >= 1, got ({dilation_h}, {dilation_w})")
    if pad_top < 0 or pad_left < 0:
        raise ValueError(f"paddings must be >= 0, got (top={pad_top}, left={pad_left})")


def check_float_sum(depth: int, lane_count: int, lane_end: int, fma_from: int) -> int:
    """A float sum's split of `depth` channels (refnet.forms.FloatSum.split) fits it; returns
    fma_from with -1 (never fused) resolved to depth."""
    if lane_count < 0 or lane_count & (lane_count - 1):
        raise ValueError(f"lane_count must be 0 or a power of two, got {lane_count}")
    if lane_end < 0 or lane_end > depth or (lane_end and (not lane_count or lane_end % lane_count)):
        raise ValueError(f"lane_end {lane_end} must be a multiple of lane_count {lane_count} within depth {depth}")
    if fma_from < 0:
        return depth
    if fma_from < lane_end:
        raise ValueError(f"fma_from {fma_from} must not be below lane_end {lane_end}")
    return fma_from
