"""refnet: the golden reference for MobileNet inference.

Bit-exact LiteRT reference-kernel arithmetic in NumPy and hand-written Cython kernels.
"""
import os

# libgomp (loaded with refnet._kernels_fast) reads this once: sleeping, not spinning, idle threads
# keep a shared or busy machine from stalling every parallel region (num_threads > 1).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import (AllocationError, EdgeTpuOpError, InputError, InterpreterStateError, InvalidModelError,
                     MemoryLimitError, ModelFormatError, OpExecutionError, RefnetError, ResizeError,
                     UnsupportedOpError)
from .graph import Graph, Op, Quantization, Tensor
from .interpreter import Interpreter, OpResolverType, SignatureRunner
from .tflite_reader import read_tflite

__version__ = "0.1.0"

__all__ = [
    "Interpreter", "OpResolverType", "SignatureRunner", "read_tflite", "AllocationError", "ResizeError", "Graph", "Op", "Tensor", "Quantization", "RefnetError",
    "ModelFormatError", "InvalidModelError", "UnsupportedOpError", "EdgeTpuOpError", "InputError",
    "InterpreterStateError", "OpExecutionError", "MemoryLimitError", "__version__",
]
