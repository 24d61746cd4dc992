"""Op registry. One module per op family; each registers its kinds here.

An op implementation is a pair:
  prepare(ctx) -> params   run once at allocate_tensors (multipliers, repacked weights, ...)
  run(ctx, inputs) -> list of output arrays
`ctx` is an OpContext: the op, its tensors, the profile and the prepared params.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..fixedpoint import round_half_away  # noqa: F401  (op modules import it from here)
from ..errors import InvalidModelError, OpExecutionError, UnsupportedOpError
from ..graph import Graph, Op, Tensor
from ..profile import Profile


@dataclass
class OpContext:
    op: Op
    graph: Graph
    profile: Profile
    params: Any = None
    num_threads: int = 1  # the interpreter's num_threads, for the kernels' parallel loops

    def input_tensor(self, i: int) -> Tensor | None:
        if i >= len(self.op.inputs) or self.op.inputs[i] < 0:
            return None
        return self.graph.tensors[self.op.inputs[i]]

    def output_tensor(self, i: int = 0) -> Tensor:
        return self.graph.tensors[self.op.outputs[i]]

    @property
    def where(self) -> str:
        return f"{self.graph.source}: {self.op.describe()}"

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"{self.where}: {message}")

    def unsupported(self, message: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where}: {message}")

    def arithmetic_error(self, message: str) -> OpExecutionError:
        return OpExecutionError(f"{self.where}: {message}")


@dataclass
class OpImpl:
    prepare: Callable[[OpContext], Any]
    run: Callable[[OpContext, list], list]
    # (op, graph, its output values) -> per output a mask of the elements the runtime leaves
    # undefined (not written), or None: comparisons skip those elements
    undefined: Callable | None = None


REGISTRY: dict[str, OpImpl] = {}


def _no_prepare(ctx: OpContext) -> None:
    return None


def op_key(op: Op) -> str:
    """The registry key of an op: its builtin kind, or CUSTOM:<name> for a custom op."""
    return f"CUSTOM:{op.custom_code}" if op.kind == "CUSTOM" else op.kind


def implementation(op: Op) -> OpImpl | None:
    return REGISTRY.get(op_key(op))


def register(*kinds: str, prepare: Callable | None = None, undefined: Callable | None = None):
    """Decorator: register `run` for the op kinds given (builtin names, or CUSTOM:<name>)."""

    def wrap(run):
        for kind in kinds:
            REGISTRY[kind] = OpImpl(prepare=prepare or _no_prepare, run=run, undefined=undefined)
        return run

    return wrap


def undefined_elements(graph: Graph, values: dict) -> dict[int, np.ndarray]:
    """Tensor index -> mask of the elements its op leaves undefined (ops with such outputs only)."""
    load_all()
    masks = {}
    for op in graph.ops:
        impl = implementation(op)
        if impl is None or impl.undefined is None or any(t not in values for t in op.outputs):
            continue
        for t, mask in zip(op.outputs, impl.undefined(op, graph, [values[t] for t in op.outputs])):
            if mask is not None and mask.any():
                masks[t] = mask
    return masks


# --- helpers shared by op modules -------------------------------------------------------------

# TFLite clamps float outputs to [lowest, max] even without an activation, so an overflow to
# +-inf comes out as +-FLT_MAX (NaN passes through both comparisons unchanged).
FLT_MAX = float(np.finfo(np.float32).max)
ACTIVATION_RANGES_FLOAT = {
    "NONE": (-FLT_MAX, FLT_MAX),
    "RELU": (0.0, FLT_MAX),
    "RELU_N1_TO_1": (-1.0, 1.0),
    "RELU6": (0.0, 6.0),
}


def float_activation_range(ctx: OpContext) -> tuple[float, float]:
    act = ctx.op.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATION_RANGES_FLOAT:
        raise ctx.unsupported(f"fused activation {act} is not supported")
    lo, hi = ACTIVATION_RANGES_FLOAT[act]
    return float(np.float32(lo)), float(np.float32(hi))


def per_tensor_quantization(ctx: OpContext, t: Tensor, role: str) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized tensor; refused (typed) otherwise."""
    if t.quantization is None:
        raise ctx.fail(f"{role} tensor {t.index} '{t.name}' is {t.dtype.name} but has no quantization")
    if t.quantization.per_channel:
        raise ctx.unsupported(f"per-channel quantization of the {role} tensor")
    scale, zp = t.quantization.scalar()
    if not scale > 0:
        raise ctx.fail(f"{role} tensor {t.index} '{t.name}' has scale {scale}; it must be > 0")
    return scale, zp


def quantized_activation_range(ctx: OpContext, tensor: Tensor) -> tuple[int, int]:
    """Clamp range of a quantized output under its fused activation, as TFLite computes it:
    the real bounds quantized with round-half-away (std::round) and intersected with the type."""
    act = ctx.op.options.get("fused_activation_function", "NONE")
    info = np.iinfo(tensor.dtype)
    qmin, qmax = int(info.min), int(info.max)
    if act == "NONE":
        return qmin, qmax
    scale, zp = tensor.quantization.scalar()

    def quantize(v: float) -> int:
        # TFLite: zero_point + static_cast<int32>(TfLiteRound(v / scale)), in float32.
        return zp + int(round_half_away(np.float32(v) / np.float32(scale)))

    if act == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if act == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if act == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise ctx.unsupported(f"fused activation {act} is not supported")


def flushed_denormals(x: np.ndarray) -> np.ndarray:
    """float32 x with subnormals replaced by zero of the same sign (a CPU in flush-to-zero mode:
    Profile.flush_denormals); other dtypes unchanged."""
    if x.dtype != np.float32:
        return x
    tiny = (np.abs(x) < np.finfo(np.float32).tiny) & (x != 0)
    if not tiny.any():
        return x
    return np.where(tiny, np.copysign(np.float32(0), x), x).astype(np.float32)


def quieted(x: np.ndarray) -> np.ndarray:
    """x with the quiet-NaN bit set, as x86 returns a NaN operand (meaningful for NaNs only)."""
    bits = f"u{x.dtype.itemsize}"
    return (x.view(bits) | np.array(1 << (np.finfo(x.dtype).nmant - 1), bits)).view(x.dtype)


def add_nan_first(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """float first + second, with x86's NaN rule made explicit: when an operand is NaN the result
    is the first NaN operand, quieted (its sign and payload kept). NumPy's own loops do not fix
    which operand's NaN wins (it changes between the vector body and the scalar tail)."""
    first, second = np.asarray(first), np.asarray(second)
    with np.errstate(invalid="ignore", over="ignore"):
        total = first + second
    total = np.where(np.isnan(second), quieted(np.broadcast_to(second, total.shape).copy()), total)
    return np.where(np.isnan(first), quieted(np.broadcast_to(first, total.shape).copy()), total).astype(total.dtype)


def multiply_nan_first(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """float first * second with the NaN rule of add_nan_first."""
    first, second = np.asarray(first), np.asarray(second)
    with np.errstate(invalid="ignore", over="ignore"):
        product = first * second
    product = np.where(np.isnan(second), quieted(np.broadcast_to(second, product.shape).copy()), product)
    return np.where(np.isnan(first), quieted(np.broadcast_to(first, product.shape).copy()),
                    product).astype(product.dtype)


_LOADED = False


def load_all() -> None:
    """Import every op module so they register themselves (once)."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    _LOADED = True
