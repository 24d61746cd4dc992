"""refnet's typed errors. Every error refnet raises derives from RefnetError."""


class RefnetError(Exception):
    """Base class of every error refnet raises on purpose."""


class ModelFormatError(RefnetError, ValueError):
    """A model file is malformed or unreadable: bad flatbuffer, offsets outside the file, no such
    file. Also a ValueError, as LiteRT's for the same files."""


class InvalidModelError(RefnetError):
    """A model file parses but describes something that cannot run (bad shapes, bad quantization)."""


class UnsupportedOpError(RefnetError):
    """The model contains an op (or an op/dtype combination) refnet does not implement."""


class EdgeTpuOpError(UnsupportedOpError):
    """The model was compiled for the Edge TPU: its edgetpu-custom-op only runs on the device."""


class InputError(RefnetError, ValueError):
    """A value handed to the interpreter (set_tensor, get_tensor, ...) is wrong; also a ValueError."""


class InterpreterStateError(RefnetError, RuntimeError):
    """The interpreter was used out of order (invoke before allocate_tensors, ...)."""


class AllocationError(InvalidModelError, RuntimeError):
    """allocate_tensors() met shapes an op cannot take (e.g. after resize_tensor_input); also a
    RuntimeError, as LiteRT's."""


class ResizeError(RefnetError, RuntimeError):
    """resize_tensor_input(strict=True) would change a dimension the model fixes; also a
    RuntimeError, as LiteRT's."""


class OpExecutionError(RefnetError):
    """An op met inputs its arithmetic does not define (e.g. a multiplier out of range)."""


class MemoryLimitError(RefnetError, MemoryError):
    """The model needs more memory than the configured limit."""


# What h5py raises reading a damaged HDF5 file (a bad dtype or string encoding is a TypeError):
# importers turn these into a ModelFormatError naming the file.
HDF5_READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)
