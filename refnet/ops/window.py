"""Sliding-window geometry shared by convolutions and pooling: output size and padding,
computed exactly as TFLite's ComputePaddingHeightWidth does."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    out_h: int
    out_w: int
    pad_top: int
    pad_left: int


def _out_size(padding: str, size: int, filt: int, stride: int, dilation: int) -> int:
    effective = (filt - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        n = size + stride - effective
        return n // stride if n >= 0 else -((-n) // stride)  # C division truncates toward zero
    raise ValueError(padding)


def _pad(stride: int, dilation: int, size: int, filt: int, out: int) -> int:
    effective = (filt - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2


def compute_window(ctx, in_h: int, in_w: int, filt_h: int, filt_w: int, stride_h: int,
                   stride_w: int, dilation_h: int = 1, dilation_w: int = 1) -> Window:
    """Output size and (top, left) padding; raises a typed error naming the op when the
    parameters cannot describe a window."""
    padding = ctx.op.options.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise ctx.unsupported(f"padding {padding!r}")
    for name, v in (("stride_h", stride_h), ("stride_w", stride_w), ("dilation_h", dilation_h),
                    ("dilation_w", dilation_w), ("filter height", filt_h), ("filter width", filt_w)):
        if v < 1:
            raise ctx.fail(f"{name} is {v}; it must be >= 1")
    out_h = _out_size(padding, in_h, filt_h, stride_h, dilation_h)
    out_w = _out_size(padding, in_w, filt_w, stride_w, dilation_w)
    if out_h < 0 or out_w < 0:
        raise ctx.fail(f"{padding} window {filt_h}x{filt_w} (dilation {dilation_h}x{dilation_w}) "
                       f"does not fit the {in_h}x{in_w} input")
    return Window(out_h, out_w, _pad(stride_h, dilation_h, in_h, filt_h, out_h),
                  _pad(stride_w, dilation_w, in_w, filt_w, out_w))
