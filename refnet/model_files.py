"""One entry point for every model file refnet takes, the format told by the file's contents.

- .tflite (b"TFL3" at byte 4): read as it is.
- HDF5 (its 8-byte signature): refnet's weight store (attribute format), else a Keras .h5 /
  .weights.h5, imported (batch norm folded) into refnet's float32 graph of that architecture.
- a zip: a Keras 3 .keras archive (config.json + model.weights.h5).
- a TF-slim checkpoint: a prefix whose PREFIX.index exists, or the .index / .data-* file itself.
Checkpoints become a float32 Graph and, so that LiteRT can run the same model, a .tflite written
from that graph (refnet/tflite_writer.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import HDF5_READ_ERRORS, ModelFormatError
from .graph import Graph

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
CHECKPOINT_KINDS = ("hdf5", "zip", "tf-checkpoint")  # sniff() kinds that are imported, not read


def sniff(path: Path) -> str:
    """'tflite', 'hdf5', 'zip', 'tf-checkpoint' or 'unknown', from the first bytes (or, for a
    TF-slim prefix, the .index beside it)."""
    if not path.exists() or path.is_dir():
        if Path(str(path) + ".index").is_file():
            return "tf-checkpoint"
        return "missing" if not path.exists() else "unknown"
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    if head == HDF5_SIGNATURE:
        return "hdf5"
    if head[:4] == ZIP_SIGNATURE:
        return "zip"
    if path.name.endswith(".index") or ".data-" in path.name or Path(str(path) + ".index").is_file():
        return "tf-checkpoint"
    return "unknown"


@dataclass
class LoadedModel:
    content: bytes  # a .tflite: the file itself, or written from an imported checkpoint's graph
    graph: Graph
    note: str | None = None  # what was imported, and how, for a checkpoint
    float_pixels: bool = False  # a float32 input taking pixels 0..255 (the model scales them itself)


def load_model(path_as_typed: str, resolution: int | None = None, bounded: bool = True,
               timeout: float | None = None) -> LoadedModel:
    """The model at `path_as_typed` (errors name it as typed). `resolution`: the input size for a
    checkpoint that records none (224 otherwise, said in the note). A checkpoint is read in a
    child process under a deadline (`timeout` s) and a memory limit (refnet.bounded), unless
    `bounded` is False (debugging, or a caller that is itself a bounded worker)."""
    from .tflite_reader import read_tflite

    path = Path(path_as_typed)
    kind = sniff(path)
    if kind == "missing":
        raise ModelFormatError(f"{path_as_typed}: no such model file")
    if kind == "tflite" or kind == "unknown" and path.suffix == ".tflite":
        try:
            content = path.read_bytes()
        except OSError as e:
            raise ModelFormatError(f"{path_as_typed}: cannot read: {e.strerror}") from None
        return LoadedModel(content, read_tflite(model_content=content, source=path_as_typed))
    if kind == "unknown":
        raise ModelFormatError(f"{path_as_typed}: not a model refnet knows (a .tflite, a Keras .h5 or "
                               f".weights.h5, refnet's weight store, or a TF-slim checkpoint prefix)")
    if bounded:
        from .bounded import run_bounded
        store = run_bounded(_import, path, path_as_typed, kind, resolution, source=path_as_typed,
                            what=READING[kind], timeout=timeout)
    else:
        store = _import(path, path_as_typed, kind, resolution)
    graph = store.graph(source=path_as_typed)
    from .tflite_writer import write_tflite

    spec = store.spec
    note = (f"{path_as_typed}: {store.provenance.get('source_format', kind)} imported as {spec.arch} "
            f"{spec.depth_multiplier:g} at {spec.resolution}x{spec.resolution}, float32"
            + (f" ({store.provenance['notes']})" if store.provenance.get("notes") else ""))
    if spec.preprocess:
        note += "; takes pixels 0..255 (its own " + ", ".join(p["kind"] for p in spec.preprocess) + ")"
    return LoadedModel(write_tflite(graph), graph, note, float_pixels=bool(spec.preprocess))


def is_weight_store(path: Path, path_as_typed: str | None = None, bounded: bool = True) -> bool:
    """An HDF5 file carrying refnet's weight-store format attribute (read in a bounded child
    process unless `bounded` is False: even the attributes of a damaged file can hang HDF5)."""
    import h5py

    from .weights_store import FORMAT

    if sniff(path) != "hdf5":
        return False
    if bounded:
        from .bounded import run_bounded
        return run_bounded(is_weight_store, path, path_as_typed, False,
                           source=path_as_typed or str(path), what=READING["hdf5"])
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except HDF5_READ_ERRORS as e:
        raise ModelFormatError(f"{path_as_typed or path}: not a readable HDF5 file ({e})") from None


READING = {"hdf5": "reading this HDF5 file", "zip": "reading this .keras archive (zip + HDF5)",
           "tf-checkpoint": "reading this TF checkpoint"}


def _import(path: Path, path_as_typed: str, kind: str, resolution: int | None):
    """The importer of the sniffed format (not of the file's name); runs in-process."""
    from .importers.keras_h5 import import_keras_archive, import_keras_h5
    from .importers.tensorbundle import import_tensorbundle
    from .weights_store import read_store

    if kind == "zip":
        return import_keras_archive(path, resolution=resolution)
    if kind == "tf-checkpoint":
        return import_tensorbundle(path, resolution=resolution)
    if is_weight_store(path, path_as_typed, bounded=False):
        store = read_store(path)
        if resolution:
            store.spec.resolution = int(resolution)
        return store
    return import_keras_h5(path, resolution=resolution)
