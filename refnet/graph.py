"""The in-memory model every reader produces and the interpreter executes.

A Graph is plain data: tensors (with constant buffers and quantization) and ops in execution
order. Nothing here knows about files or kernels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel on `axis`."""

    scale: np.ndarray  # float32, length 1 (per tensor) or the size of dimension `axis`
    zero_point: np.ndarray  # int64, same length as scale
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def scalar(self) -> tuple[float, int]:
        """(scale, zero_point) of a per-tensor quantization."""
        return float(self.scale[0]), int(self.zero_point[0])


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None  # constant contents (already shaped), None for activations
    quantization: Quantization | None = None
    shape_signature: tuple[int, ...] | None = None
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    index: int
    kind: str  # builtin operator name, e.g. "CONV_2D"; "CUSTOM" for custom ops
    inputs: tuple[int, ...]  # tensor indexes; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    custom_code: str | None = None

    def describe(self) -> str:
        name = self.custom_code if self.kind == "CUSTOM" and self.custom_code else self.kind
        return f"op {self.index} ({name})"


@dataclass(frozen=True)
class Signature:
    """One SignatureDef: input and output names (the converter's) -> tensor index."""

    inputs: dict[str, int]
    outputs: dict[str, int]
    subgraph: int = 0


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    source: str = "<memory>"  # file name or description, used in error messages
    description: str = ""
    # SignatureDefs: key -> Signature (names the converter gave the inputs and outputs)
    signatures: dict[str, Signature] = field(default_factory=dict)
    subgraph_count: int = 1  # refnet runs subgraph 0; the others are counted, not read
    subgraph_name: str = ""  # subgraph 0's name in the file ("" when the converter gave none)
