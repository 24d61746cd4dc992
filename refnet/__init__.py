"""refnet: the golden reference for MobileNet inference.

Bit-exact LiteRT reference-kernel arithmetic in NumPy and hand-written Cython kernels.
"""
import os

# libgomp (loaded with refnet._kernels_fast) reads this once. With num_threads > 1 every kernel
# call is a parallel region, ~60 per MobileNet invoke with Python between them: idle threads that
# spin a while (libgomp's own default, 300 000 polls, then sleep) are woken without a futex round
# trip each time; sleeping at once (OMP_WAIT_POLICY=PASSIVE, spin count 0) cost V2 int8 96x96 its
# 2-thread speed-up (1.07-1.11x against 1.32-1.40x, Zen 1 VM) and made 224x224 slower than one
# thread on a Zen 5 VM. An explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT still wins.
os.environ.setdefault("GOMP_SPINCOUNT", "300000")

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
