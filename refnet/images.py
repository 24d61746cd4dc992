"""Turn an image file into a model's input tensor (the MobileNet convention).

Pixels are resized to the model's height x width with Pillow's default filter, RGB. Then, by
the input tensor's type: uint8 takes the raw pixels (the legacy quantized MobileNets' scale
1/128, zero point 128 make that [-1, 1]); float32 takes pixel / 127.5 - 1; int8 takes that
float quantized with the tensor's own scale and zero point.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .ops import round_half_away


PREPROCESS = ("resize", "center-crop")  # center-crop: the central 87.5 %, then resize (Inception's)


def load_pixels(path, height: int, width: int, preprocess: str = "resize") -> np.ndarray:
    """HxWx3 uint8 pixels of an image file (a path or a binary file object)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if preprocess == "center-crop":
                w, h = im.size
                cw, ch = round(w * 0.875), round(h * 0.875)
                left, top = (w - cw) // 2, (h - ch) // 2
                im = im.crop((left, top, left + cw, top + ch))
            return np.asarray(im.resize((width, height)), dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such image file") from None
    # Pillow's damage reports: OSError (truncated, bad data), SyntaxError (a broken PNG chunk,
    # a bad header), ValueError (a chunk shorter than its kind: "Truncated IHDR chunk"),
    # DecompressionBombError (a header claiming billions of pixels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as e:
        raise InputError(f"{path}: not an image Pillow can read ({e}); re-save it as PNG, "
                         f"JPEG or BMP") from None


def synthetic_pixels(height: int, width: int) -> np.ndarray:
    """A deterministic test pattern (smooth colour ramps), for runs without an image."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(2 * np.pi * x / max(width, 1))
    g = 255.0 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.cos(2 * np.pi * (x + y) / max(height + width, 1))
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def pixels_to_input(pixels: np.ndarray, detail: dict, float_pixels: bool = False) -> np.ndarray:
    """Convert HxWx3 uint8 pixels to the tensor described by an input detail dict. A float32
    input takes x / 127.5 - 1, or the pixel values themselves when `float_pixels` (a model that
    scales its own input: a Keras Rescaling or Normalization layer)."""
    shape = tuple(int(s) for s in detail["shape"])
    if len(shape) != 4 or shape[3] != 3:
        raise InputError(f"input tensor '{detail['name']}' has shape {list(shape)}; images need "
                         f"[batch, height, width, 3]")
    dtype = np.dtype(detail["dtype"])
    batch = np.broadcast_to(pixels, shape)
    if dtype == np.uint8:
        return np.ascontiguousarray(batch)
    if dtype == np.float32 and float_pixels:
        return np.ascontiguousarray(batch.astype(np.float32))
    real = batch.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    if dtype == np.float32:
        return np.ascontiguousarray(real)
    if dtype == np.int8:
        scale, zp = detail["quantization"]
        if scale == 0:
            raise InputError(f"int8 input '{detail['name']}' has no quantization scale")
        # LiteRT's QUANTIZE: float32 division, round half away from zero.
        q = round_half_away(real / np.float32(scale)) + zp
        return np.clip(q, -128, 127).astype(np.int8)
    raise InputError(f"input tensor '{detail['name']}' is {dtype.name}; images need uint8, int8 or float32")


def image_input(path: str | Path | None, detail: dict, float_pixels: bool = False) -> np.ndarray:
    shape = [int(s) for s in detail["shape"]]
    if len(shape) != 4:
        raise InputError(f"input tensor '{detail['name']}' has shape {shape}; images need 4-D NHWC")
    h, w = shape[1], shape[2]
    pixels = synthetic_pixels(h, w) if path is None else load_pixels(path, h, w)
    return pixels_to_input(pixels, detail, float_pixels)
