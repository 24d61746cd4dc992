"""refnet.Interpreter: LiteRT's Python Interpreter API over refnet's reference arithmetic.

Switching is an import: `from refnet import Interpreter` in place of
`from ai_edge_litert.interpreter import Interpreter`. Tensor indexes are the file's.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops as ops_registry
from .errors import (EdgeTpuOpError, InputError, InterpreterStateError, InvalidModelError,
                     MemoryLimitError, RefnetError)
from .graph import Graph
from .ops import OpContext
from .profile import get_profile
from .tflite_reader import read_tflite

DEFAULT_MEMORY_LIMIT = 4 << 30  # bytes of activations + constants refnet agrees to hold


def check_supported(graph: Graph) -> None:
    """Raise a typed error naming the first op refnet cannot run (Edge TPU ops explained)."""
    ops_registry.load_all()
    tpu = [op for op in graph.ops if op.kind == "CUSTOM" and op.custom_code == "edgetpu-custom-op"]
    if tpu:
        cpu_ops = [op.describe() for op in graph.ops if op not in tpu]
        around = ", ".join(cpu_ops) if cpu_ops else "none: the whole model runs on the Edge TPU"
        raise EdgeTpuOpError(
            f"{graph.source}: {tpu[0].describe()} is an edgetpu-custom-op: this model was compiled "
            f"for the Edge TPU and that op only runs on the device (its contents are the compiler's "
            f"private format). CPU ops around it: {around}. To verify on CPU, run the model the "
            f"Edge TPU compiler consumed (the same file before `edgetpu_compiler`).")
    for op in graph.ops:
        if op.kind not in ops_registry.REGISTRY:
            name = f"custom op '{op.custom_code}'" if op.kind == "CUSTOM" else f"builtin op {op.kind}"
            raise ops_registry.UnsupportedOpError(
                f"{graph.source}: op {op.index} is {name}, which refnet does not implement "
                f"(supported: {', '.join(sorted(ops_registry.REGISTRY))})")


def _details(graph: Graph, index: int) -> dict:
    t = graph.tensors[index]
    q = t.quantization
    if q is None:
        quant = (0.0, 0)
        params = {"scales": np.zeros(0, np.float32), "zero_points": np.zeros(0, np.int32),
                  "quantized_dimension": 0, "block_size": 0}
    else:
        quant = (float(q.scale[0]), int(q.zero_point[0])) if not q.per_channel else (0.0, 0)
        params = {"scales": q.scale.astype(np.float32), "zero_points": q.zero_point.astype(np.int32),
                  "quantized_dimension": q.axis, "block_size": 0}
    shape = np.array(t.shape, dtype=np.int32)
    sig = np.array(t.shape_signature if t.shape_signature else t.shape, dtype=np.int32)
    return {"name": t.name, "index": index, "shape": shape, "shape_signature": sig,
            "dtype": t.dtype.type, "quantization": quant, "quantization_parameters": params,
            "sparsity_parameters": {}}


class Interpreter:
    """Run a .tflite model with LiteRT's reference arithmetic (or another profile).

    Parameters mirror ai_edge_litert.interpreter.Interpreter; LiteRT-only options
    (delegates, op resolver type, ...) are accepted and ignored.
    """

    def __init__(self, model_path=None, model_content=None, experimental_preserve_all_tensors=False,
                 num_threads=None, profile="reference", memory_limit=DEFAULT_MEMORY_LIMIT,
                 graph: Graph | None = None, **litert_only_options):
        if graph is None:
            graph = read_tflite(model_path=model_path, model_content=model_content)
        self.graph = graph
        self.profile = get_profile(profile)
        self.preserve_all_tensors = experimental_preserve_all_tensors
        self.memory_limit = memory_limit
        # LiteRT's num_threads: the kernels' OpenMP threads (None or -1: one thread, refnet's default)
        self.num_threads = max(1, int(num_threads)) if num_threads is not None and num_threads != -1 else 1
        self._values: dict[int, np.ndarray] = {}
        self._contexts: list[OpContext] | None = None
        check_supported(graph)

    # --- setup ----------------------------------------------------------------------------
    def allocate_tensors(self) -> None:
        g = self.graph
        need = sum(math.prod(t.shape) * t.dtype.itemsize for t in g.tensors)  # exact, no int64 wrap
        if need > self.memory_limit:
            raise MemoryLimitError(
                f"{g.source}: tensors need {need / 2**20:.1f} MiB, more than the limit of "
                f"{self.memory_limit / 2**20:.1f} MiB (raise it with Interpreter(memory_limit=...))")
        contexts = []
        for op in g.ops:
            ctx = OpContext(op=op, graph=g, profile=self.profile, num_threads=self.num_threads)
            try:
                ctx.params = ops_registry.REGISTRY[op.kind].prepare(ctx)
            except RefnetError:
                raise
            except Exception as e:  # an op's prepare met a model it did not foresee: stay typed
                raise InvalidModelError(f"{ctx.where}: cannot prepare ({type(e).__name__}: {e})") from e
            contexts.append(ctx)
        self._contexts = contexts
        self._values = {t.index: t.data for t in g.tensors if t.is_constant}
        for i in g.inputs:
            t = g.tensors[i]
            if i not in self._values:
                self._values[i] = np.zeros(t.shape, t.dtype)

    def _require_allocated(self, what: str) -> None:
        if self._contexts is None:
            raise InterpreterStateError(f"{what} before allocate_tensors(): call allocate_tensors() first")

    # --- details --------------------------------------------------------------------------
    def get_input_details(self) -> list[dict]:
        return [_details(self.graph, i) for i in self.graph.inputs]

    def get_output_details(self) -> list[dict]:
        return [_details(self.graph, i) for i in self.graph.outputs]

    def get_tensor_details(self) -> list[dict]:
        return [_details(self.graph, t.index) for t in self.graph.tensors]

    # --- data in and out ------------------------------------------------------------------
    def _check_index(self, tensor_index) -> int:
        n = len(self.graph.tensors)
        if not isinstance(tensor_index, (int, np.integer)) or not 0 <= tensor_index < n:
            raise InputError(f"tensor index {tensor_index!r} does not exist (the model has {n} "
                             f"tensors, 0..{n - 1})")
        return int(tensor_index)

    def set_tensor(self, tensor_index, value) -> None:
        self._require_allocated("set_tensor()")
        index = self._check_index(tensor_index)
        t = self.graph.tensors[index]
        if t.is_constant:
            raise InputError(f"tensor {index} '{t.name}' is a constant of the model; it cannot be set")
        value = np.asarray(value)
        if value.dtype != t.dtype:
            raise InputError(f"tensor {index} '{t.name}' expects dtype {t.dtype.name}, got "
                             f"{value.dtype.name}")
        if tuple(value.shape) != tuple(t.shape):
            raise InputError(f"tensor {index} '{t.name}' expects shape {list(t.shape)}, got "
                             f"{list(value.shape)}")
        self._values[index] = np.array(value, copy=True, order="C")

    def get_tensor(self, tensor_index, subgraph_index=0) -> np.ndarray:
        self._require_allocated("get_tensor()")
        index = self._check_index(tensor_index)
        if index not in self._values:
            t = self.graph.tensors[index]
            return np.zeros(t.shape, t.dtype)
        return np.array(self._values[index], copy=True)

    def tensor(self, tensor_index):
        return lambda: self.get_tensor(tensor_index)

    # --- execution ------------------------------------------------------------------------
    def invoke(self) -> None:
        self._require_allocated("invoke()")
        g = self.graph
        values = self._values
        keep = set(g.outputs) | set(g.inputs)
        flush = self.profile.flush_denormals
        last_use = {}
        if not self.preserve_all_tensors:
            for op in g.ops:
                for t in op.inputs:
                    last_use[t] = op.index
        for ctx in self._contexts:
            op = ctx.op
            inputs = [values.get(t) if t >= 0 else None for t in op.inputs]
            if flush:  # the CPU reads subnormal inputs as zero and writes subnormal results as zero
                inputs = [v if v is None else ops_registry.flushed_denormals(v) for v in inputs]
            try:
                outputs = ops_registry.REGISTRY[op.kind].run(ctx, inputs)
            except RefnetError:
                raise
            except Exception as e:  # a bug or an unforeseen input: name the op, keep the type
                raise ops_registry.OpExecutionError(
                    f"{ctx.where}: failed with {type(e).__name__}: {e}") from e
            for t, arr in zip(op.outputs, outputs):
                tensor = g.tensors[t]
                if arr.dtype != tensor.dtype:
                    raise ops_registry.OpExecutionError(
                        f"{ctx.where}: produced {arr.dtype.name} for output tensor {t} "
                        f"'{tensor.name}' of dtype {tensor.dtype.name} (refnet bug)")
                if arr.shape != tuple(tensor.shape):  # later ops were prepared for the declared shape
                    raise InvalidModelError(
                        f"{ctx.where}: computes shape {list(arr.shape)} for output tensor {t} "
                        f"'{tensor.name}', but the model declares {list(tensor.shape)}")
                values[t] = ops_registry.flushed_denormals(arr) if flush else arr
            if not self.preserve_all_tensors:
                for t in op.inputs:
                    if t >= 0 and last_use.get(t) == op.index and t not in keep \
                            and not g.tensors[t].is_constant:
                        values.pop(t, None)
