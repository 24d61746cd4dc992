"""refnet.Interpreter: LiteRT's Python Interpreter API over refnet's reference arithmetic.

Switching is an import: `from refnet import Interpreter` in place of
`from ai_edge_litert.interpreter import Interpreter`. Tensor indexes are the file's.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import Path

import numpy as np

from . import ops as ops_registry
from .errors import (AllocationError, EdgeTpuOpError, InputError, InterpreterStateError,
                     InvalidModelError, MemoryLimitError, RefnetError, ResizeError)
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
    from .model_cut import first_unsupported_needed

    first = first_unsupported_needed(graph, is_supported)
    if first is not None:
        op = graph.ops[first]
        name = f"custom op '{op.custom_code}'" if op.kind == "CUSTOM" else f"builtin op {op.kind}"
        raise ops_registry.UnsupportedOpError(
            f"{graph.source}: op {op.index} is {name}, which refnet does not implement, and the model's "
            f"outputs depend on it (`refnet verify MODEL` runs and verifies the model up to it, "
            f"--until-op {op.index}; supported: {', '.join(sorted(ops_registry.REGISTRY))})")


def is_supported(op) -> bool:
    ops_registry.load_all()
    return ops_registry.implementation(op) is not None


def dead_unsupported_ops(graph: Graph) -> set[int]:
    """Ops refnet cannot run that no model output depends on: skipped (as nothing reads them)."""
    from .model_cut import ops_needed_for

    needed = ops_needed_for(graph, graph.outputs)
    return {op.index for op in graph.ops if not is_supported(op) and op.index not in needed}


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


def _carried_shape(declared: tuple, inputs: list[tuple[tuple, tuple]]) -> tuple:
    """An output's shape guessed from its inputs' (declared, new) shapes: the new shape of an input
    it was declared equal to, else its own with an input's new batch size."""
    for old, new in inputs:
        if old == declared:
            return new
    for old, new in inputs:
        if old and declared and old[0] == declared[0] and len(new) == len(old):
            return (new[0],) + tuple(declared[1:])
    return declared


class OpResolverType(enum.Enum):
    """LiteRT's op resolver types (same names and values); each selects the profile of that path.

    LiteRT's own enum (ai_edge_litert.interpreter.OpResolverType) is accepted as well, by name."""

    AUTO = 0
    BUILTIN = 1
    BUILTIN_REF = 2
    BUILTIN_WITHOUT_DEFAULT_DELEGATES = 3


# LiteRT's resolver -> refnet's path profile: AUTO and BUILTIN apply the XNNPACK delegate.
RESOLVER_PATHS = {"AUTO": "xnnpack", "BUILTIN": "xnnpack", "BUILTIN_REF": "reference",
                  "BUILTIN_WITHOUT_DEFAULT_DELEGATES": "optimized"}


def profile_for_resolver(resolver) -> str:
    """The short profile name for an op resolver type (refnet's or LiteRT's enum, its name or value)."""
    if isinstance(resolver, enum.Enum):
        name = resolver.name
    elif isinstance(resolver, (int, np.integer)) and not isinstance(resolver, bool):
        name = next((r.name for r in OpResolverType if r.value == resolver), None)
    else:
        name = str(resolver)
    if name not in RESOLVER_PATHS:
        raise InputError(f"experimental_op_resolver_type {resolver!r} is not one of "
                         f"{', '.join(RESOLVER_PATHS)}")
    return RESOLVER_PATHS[name]


class SignatureRunner:
    """LiteRT's SignatureRunner: call with the signature's input names, get its outputs by name.

    Each call resizes the inputs to the arrays given (a batch of any size), allocates and invokes."""

    def __init__(self, interpreter: Interpreter, signature_key: str):
        self._interpreter = interpreter
        self._key = signature_key
        self._signature = interpreter.graph.signatures[signature_key]
        if self._signature.subgraph != 0:
            raise InputError(f"signature '{signature_key}' runs subgraph {self._signature.subgraph}; "
                             f"refnet runs subgraph 0 only")

    def get_input_details(self) -> dict[str, dict]:
        return {name: _details(self._interpreter.graph, i) for name, i in self._signature.inputs.items()}

    def get_output_details(self) -> dict[str, dict]:
        return {name: _details(self._interpreter.graph, i) for name, i in self._signature.outputs.items()}

    def __call__(self, **inputs) -> dict[str, np.ndarray]:
        expected = self._signature.inputs
        if len(inputs) != len(expected):
            raise InputError(f"signature '{self._key}' takes {len(expected)} input(s) "
                             f"({', '.join(expected)}), got {len(inputs)}")
        unknown = [name for name in inputs if name not in expected]
        if unknown:
            raise InputError(f"signature '{self._key}' has no input '{unknown[0]}' "
                             f"(its inputs: {', '.join(expected)})")
        it = self._interpreter
        for name, value in inputs.items():
            it.resize_tensor_input(expected[name], np.shape(value))
        it.allocate_tensors()
        for name, value in inputs.items():
            it.set_tensor(expected[name], value)
        it.invoke()
        return {name: it.get_tensor(i) for name, i in self._signature.outputs.items()}


class Interpreter:
    """Run a .tflite model with LiteRT's reference arithmetic (or another profile).

    Parameters mirror ai_edge_litert.interpreter.Interpreter. `experimental_op_resolver_type`
    selects the profile of that LiteRT path (BUILTIN_REF -> reference, BUILTIN_WITHOUT_DEFAULT_
    DELEGATES -> optimized, AUTO/BUILTIN -> xnnpack) unless `profile` names one; with neither,
    refnet runs the reference arithmetic. Delegates and other LiteRT-only options are ignored.
    """

    def __init__(self, model_path=None, model_content=None, experimental_preserve_all_tensors=False,
                 num_threads=None, profile=None, memory_limit=DEFAULT_MEMORY_LIMIT,
                 graph: Graph | None = None, experimental_op_resolver_type=None, **litert_only_options):
        if graph is None and model_path is not None and model_content is None:
            from .model_files import CHECKPOINT_KINDS, load_model, sniff
            if sniff(Path(model_path)) in CHECKPOINT_KINDS:  # a Keras / TF-slim checkpoint: imported
                graph = load_model(str(model_path)).graph
        if graph is None:
            graph = read_tflite(model_path=model_path, model_content=model_content)
        self.graph = graph
        if profile is None:
            profile = ("reference" if experimental_op_resolver_type is None
                       else profile_for_resolver(experimental_op_resolver_type))
        self.profile = get_profile(profile)
        self.preserve_all_tensors = experimental_preserve_all_tensors
        self.memory_limit = memory_limit
        # LiteRT's num_threads: the kernels' OpenMP threads (None or -1: one thread, refnet's default)
        self.num_threads = max(1, int(num_threads)) if num_threads is not None and num_threads != -1 else 1
        self._values: dict[int, np.ndarray] = {}
        self._contexts: list[OpContext] | None = None
        self._resized = False  # resize_tensor_input since the last allocate_tensors
        self._declared = graph  # the shapes the file declares
        check_supported(graph)

    # --- setup ----------------------------------------------------------------------------
    def allocate_tensors(self) -> None:
        if self._resized:
            self._infer_shapes()
            self._resized = False
        g = self.graph
        need = sum(math.prod(t.shape) * t.dtype.itemsize for t in g.tensors)  # exact, no int64 wrap
        if need > self.memory_limit:
            raise MemoryLimitError(
                f"{g.source}: tensors need {need / 2**20:.1f} MiB, more than the limit of "
                f"{self.memory_limit / 2**20:.1f} MiB (raise it with Interpreter(memory_limit=...))")
        contexts = []
        skipped = dead_unsupported_ops(g)
        for op in g.ops:
            if op.index in skipped:
                continue
            ctx = OpContext(op=op, graph=g, profile=self.profile, num_threads=self.num_threads)
            try:
                ctx.params = ops_registry.implementation(op).prepare(ctx)
            except RefnetError:
                raise
            except Exception as e:  # an op's prepare met a model it did not foresee: stay typed
                raise InvalidModelError(f"{ctx.where}: cannot prepare ({type(e).__name__}: {e})") from e
            contexts.append(ctx)
        self._contexts = contexts
        self._steps = self._plan_steps(contexts)
        self._values = {t.index: t.data for t in g.tensors if t.is_constant}
        for i in g.inputs:
            t = g.tensors[i]
            if i not in self._values:
                self._values[i] = np.zeros(t.shape, t.dtype)

    # --- shapes ---------------------------------------------------------------------------
    def resize_tensor_input(self, input_index, tensor_size, strict: bool = False) -> None:
        """Give an input a new shape (a batch of N, another resolution); allocate_tensors() then
        derives every other tensor's shape. With strict, only dimensions the model leaves free
        (-1 in shape_signature) may change."""
        index = self._check_index(input_index)
        if index not in self.graph.inputs:
            raise InputError(f"tensor {index} '{self.graph.tensors[index].name}' is not a model input "
                             f"(inputs: {', '.join(map(str, self.graph.inputs))})")
        try:
            shape = tuple(int(d) for d in np.asarray(tensor_size, dtype=np.int64).reshape(-1))
        except (TypeError, ValueError):
            raise InputError(f"resize_tensor_input: tensor_size {tensor_size!r} is not a list of "
                             f"integers") from None
        if any(d < 0 for d in shape):
            raise InputError(f"resize_tensor_input: tensor_size {list(shape)} has a negative dimension")
        t = self.graph.tensors[index]
        if strict:
            sig = t.shape_signature or t.shape
            fixed = [k for k, (old, new) in enumerate(zip(sig, shape)) if old != -1 and old != new]
            if len(sig) != len(shape) or fixed:
                raise ResizeError(f"tensor {index} '{t.name}': strict resize to {list(shape)} changes a "
                                 f"fixed dimension of its signature {list(sig)}")
        if shape == tuple(t.shape):
            return
        if not self._resized:  # shapes change on this interpreter's own copy of the tensor table
            self.graph = dataclasses.replace(self.graph,
                                             tensors=[dataclasses.replace(x) for x in self.graph.tensors])
        self.graph.tensors[index].shape = shape
        self._values.pop(index, None)
        self._contexts = None
        self._resized = True

    def _infer_shapes(self) -> None:
        """Each op, in order, derives its outputs' shapes from its inputs' (LiteRT's Prepare): refnet
        runs it once on zeros of the new shapes and keeps the shapes it computes."""
        g = self.graph
        values = {t.index: t.data for t in g.tensors if t.is_constant}
        for i in g.inputs:
            values[i] = np.zeros(g.tensors[i].shape, g.tensors[i].dtype)
        old = {t.index: tuple(t.shape) for t in self._declared.tensors}
        for op in g.ops:
            ins = [g.tensors[t] for t in op.inputs if t >= 0 and not g.tensors[t].is_constant]
            for t in op.outputs:  # a first guess, for prepares that check the declared output shape
                g.tensors[t].shape = _carried_shape(old[t], [(old[x.index], tuple(x.shape)) for x in ins])
            ctx = OpContext(op=op, graph=g, profile=self.profile)
            try:
                ctx.params = ops_registry.implementation(op).prepare(ctx)
                outs = ops_registry.implementation(op).run(ctx, [values.get(t) if t >= 0 else None
                                                                for t in op.inputs])
                for t, arr in zip(op.outputs, outs):  # allocate_tensors prepares on these next
                    g.tensors[t].shape = tuple(arr.shape)
                    values[t] = arr
            except Exception as e:
                shapes = ", ".join(str(list(x.shape)) for x in ins)
                why = str(e).removeprefix(f"{ctx.where}: ")
                raise AllocationError(f"{ctx.where}: cannot take input shape(s) {shapes} after "
                                      f"resize_tensor_input: {why}") from None

    def _require_allocated(self, what: str) -> None:
        if self._contexts is None:
            raise InterpreterStateError(f"{what} before allocate_tensors(): call allocate_tensors() first")

    def num_subgraphs(self) -> int:
        return self.graph.subgraph_count

    def reset_all_variables(self) -> None:
        """Variable tensors back to zero (MobileNets have none; LiteRT's call, kept for parity)."""
        for t in self.graph.tensors:
            if t.is_variable and t.index in self._values:
                self._values[t.index] = np.zeros(t.shape, t.dtype)

    # --- signatures -----------------------------------------------------------------------
    def get_signature_list(self) -> dict[str, dict[str, list[str]]]:
        return {key: {"inputs": list(s.inputs), "outputs": list(s.outputs)}
                for key, s in self.graph.signatures.items()}

    def get_signature_runner(self, signature_key: str | None = None) -> SignatureRunner:
        signatures = self.graph.signatures
        if signature_key is None:
            if len(signatures) != 1:
                raise InputError(f"get_signature_runner() without a key needs a model with exactly one "
                                 f"signature; this one has {len(signatures)}"
                                 + (f" ({', '.join(signatures)})" if signatures else ""))
            signature_key = next(iter(signatures))
        if signature_key not in signatures:
            raise InputError(f"no signature '{signature_key}' (the model's: "
                             f"{', '.join(signatures) or 'none'})")
        return SignatureRunner(self, signature_key)

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
    def _plan_steps(self, contexts: list) -> list:
        """Per prepared op, what invoke() needs and allocate_tensors() can know: its run function,
        its outputs' (index, dtype, shape) and the activations it reads last (dropped after it,
        unless every tensor is preserved)."""
        g = self.graph
        keep = set(g.outputs) | set(g.inputs)
        last_use = {}
        for op in g.ops:
            for t in op.inputs:
                last_use[t] = op.index
        steps = []
        for ctx in contexts:
            op = ctx.op
            outputs = tuple((t, g.tensors[t].dtype, tuple(g.tensors[t].shape)) for t in op.outputs)
            frees = () if self.preserve_all_tensors else tuple(
                t for t in dict.fromkeys(op.inputs) if t >= 0 and last_use.get(t) == op.index
                and t not in keep and not g.tensors[t].is_constant)
            steps.append((ctx, ops_registry.implementation(op).run, outputs, frees))
        return steps

    def invoke(self) -> None:
        self._require_allocated("invoke()")
        g = self.graph
        values = self._values
        flush = self.profile.flush_denormals
        for ctx, run, expected, frees in self._steps:
            inputs = [values.get(t) for t in ctx.op.inputs]  # an absent input (-1) is None
            if flush:  # the CPU reads subnormal inputs as zero and writes subnormal results as zero
                inputs = [v if v is None else ops_registry.flushed_denormals(v) for v in inputs]
            try:
                outputs = run(ctx, inputs)
            except RefnetError:
                raise
            except Exception as e:  # a bug or an unforeseen input: name the op, keep the type
                raise ops_registry.OpExecutionError(
                    f"{ctx.where}: failed with {type(e).__name__}: {e}") from e
            for (t, dtype, shape), arr in zip(expected, outputs):
                if arr.dtype is not dtype and arr.dtype != dtype:  # `is`: the common case, cheaply
                    raise ops_registry.OpExecutionError(
                        f"{ctx.where}: produced {arr.dtype.name} for output tensor {t} "
                        f"'{g.tensors[t].name}' of dtype {dtype.name} (refnet bug)")
                if arr.shape != shape:  # later ops were prepared for the declared shape
                    raise InvalidModelError(
                        f"{ctx.where}: computes shape {list(arr.shape)} for output tensor {t} "
                        f"'{g.tensors[t].name}', but the model declares {list(shape)}")
                values[t] = ops_registry.flushed_denormals(arr) if flush else arr
            for t in frees:
                values.pop(t, None)
