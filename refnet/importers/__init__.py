"""Checkpoint importers - no TensorFlow at run time (h5py, NumPy and refnet's own parsers).

  keras_h5       keras.applications MobileNetV2/V3 .h5 and .weights.h5
  tensorbundle   TF-slim checkpoints (TensorBundle: .index SSTable + .data-00000-of-00001)
  tflite_weights float .tflite models

import_checkpoint(path) picks the importer from the file and returns a WeightStore
(refnet.weights_store) with batch norm folded.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelFormatError


def import_checkpoint(path, spec=None, resolution: int | None = None, keras_config: dict | None = None,
                      bounded: bool = True, timeout: float | None = None):
    """`resolution`: the input resolution for a source that does not record one (TF-slim
    checkpoints, weights-only files); None means 224, said so in the provenance notes.
    `keras_config`: a Keras weights-only file's model config (model.to_json() as a dict).
    Checkpoints (not .tflite: refnet's own reader) are read in a child process under a deadline
    (`timeout` s) and a memory limit (refnet.bounded), unless `bounded` is False."""
    source = str(path)
    path = Path(path)
    name = path.name
    if bounded and not name.endswith(".tflite"):
        from ..bounded import run_bounded
        what = ("reading this .keras archive (zip + HDF5)" if name.endswith(".keras") else
                "reading this HDF5 file" if name.endswith((".h5", ".hdf5")) else
                "reading this TF checkpoint")
        return run_bounded(import_checkpoint, source, spec, resolution, keras_config, False, source=source,
                           what=what, timeout=timeout)
    if name.endswith(".keras"):
        from .keras_h5 import import_keras_archive
        return import_keras_archive(path, spec, resolution)
    if name.endswith(".h5") or name.endswith(".hdf5"):
        from .keras_h5 import import_keras_h5
        return import_keras_h5(path, spec, resolution, keras_config)
    if name.endswith(".tflite"):
        from .tflite_weights import import_tflite
        return import_tflite(path, spec)
    if name.endswith(".index") or Path(str(path) + ".index").exists() or \
            ".data-" in name:
        from .tensorbundle import import_tensorbundle
        return import_tensorbundle(path, spec, resolution=resolution)
    if not path.exists():
        raise ModelFormatError(f"{path}: no such file (nor {path}.index)")
    raise ModelFormatError(f"{path}: unknown checkpoint format (expected .keras, .h5, .weights.h5, "
                           f".tflite or a TF checkpoint prefix/.index)")
