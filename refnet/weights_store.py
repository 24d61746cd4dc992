"""refnet's own weight store: one HDF5 file (h5py) per checkpoint. Format: weights/README.md.

    /                      attrs: format = "refnet-weights", format_version = 1,
                                  spec (JSON of refnet.models.ArchSpec), arch, depth_multiplier,
                                  resolution, num_classes, finegrain_classification_mode,
                                  provenance (JSON: source_file, source_sha256, source_format,
                                  importer, importer_version, refnet_version, created, notes)
    /tensors/<name>        float32 datasets, one per tensor, <name> the slim variable name
                           (e.g. tensors/MobilenetV2/Conv/weights), batch norm already folded;
                           layout HWIO ([kh, kw, cin, cout]; depthwise [kh, kw, C, 1]).

Loading checks the file against the architecture its spec describes: every tensor present,
no unknown tensor, shapes and dtype exact. Any problem raises ModelFormatError naming the file
and the entry.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import HDF5_READ_ERRORS, ModelFormatError, RefnetError

FORMAT = "refnet-weights"
FORMAT_VERSION = 1


@dataclass
class WeightStore:
    spec: "ArchSpec"  # noqa: F821
    tensors: dict[str, np.ndarray]
    provenance: dict = field(default_factory=dict)

    def net(self):
        from .models import get_net
        return get_net(self.spec)

    def graph(self, source: str = "<weight store>"):
        from .models.graph_builder import build_graph
        return build_graph(self.net(), self.tensors, source=source)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def provenance_for(source: Path, source_format: str, importer: str, importer_version: str,
                   notes: str = "") -> dict:
    from . import __version__
    return {"source_file": Path(source).name, "source_sha256": sha256_of(source),
            "source_format": source_format, "importer": importer,
            "importer_version": importer_version, "refnet_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "notes": notes}


def check_tensors(store: WeightStore, source: str) -> None:
    expected = store.net().folded_variables()
    for name, shape in expected.items():
        if name not in store.tensors:
            raise ModelFormatError(f"{source}: tensor '{name}' is missing ({store.spec.arch} "
                                   f"dm={store.spec.depth_multiplier} needs it)")
        t = store.tensors[name]
        if tuple(t.shape) != tuple(shape):
            raise ModelFormatError(f"{source}: tensor '{name}' has shape {tuple(t.shape)}, "
                                   f"expected {tuple(shape)}")
        if t.dtype != np.float32:
            raise ModelFormatError(f"{source}: tensor '{name}' is {t.dtype}, expected float32")
        if not np.isfinite(t).all():
            raise ModelFormatError(f"{source}: tensor '{name}' holds non-finite values")
    extra = sorted(set(store.tensors) - set(expected))
    if extra:
        raise ModelFormatError(f"{source}: tensor '{extra[0]}' is not part of {store.spec.arch} "
                               f"({len(extra)} unknown tensor(s))")


def write_store(path: Path, store: WeightStore) -> None:
    import h5py
    check_tensors(store, str(path))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        spec = store.spec.to_dict()
        f.attrs["spec"] = json.dumps(spec, sort_keys=True)
        for k in ("arch", "depth_multiplier", "resolution", "num_classes",
                  "finegrain_classification_mode"):
            f.attrs[k] = spec[k]
        f.attrs["provenance"] = json.dumps(store.provenance, sort_keys=True)
        g = f.create_group("tensors")
        for name in sorted(store.tensors):
            g.create_dataset(name, data=np.ascontiguousarray(store.tensors[name], np.float32))
    tmp.replace(path)


def read_store(path: Path) -> WeightStore:
    import h5py
    from .models import ArchSpec
    path = Path(path)
    src = str(path)
    if not path.exists():
        raise ModelFormatError(f"{src}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ModelFormatError(f"{src}: not a readable HDF5 file ({e})") from None
    try:
        with f:
            if f.attrs.get("format") != FORMAT:
                raise ModelFormatError(f"{src}: not a refnet weight store (attribute 'format' is "
                                       f"{f.attrs.get('format')!r}, expected {FORMAT!r})")
            version = int(f.attrs.get("format_version", -1))
            if version != FORMAT_VERSION:
                raise ModelFormatError(f"{src}: weight store format_version {version}, refnet "
                                       f"reads {FORMAT_VERSION}")
            try:
                spec = ArchSpec.from_dict(json.loads(f.attrs["spec"]))
                provenance = json.loads(f.attrs.get("provenance", "{}"))
            except (KeyError, ValueError, TypeError) as e:
                raise ModelFormatError(f"{src}: attribute 'spec' is unreadable ({e})") from None
            if "tensors" not in f:
                raise ModelFormatError(f"{src}: group 'tensors' is missing")
            tensors: dict[str, np.ndarray] = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    try:
                        tensors[name] = obj[()]
                    except (OSError, ValueError, RuntimeError) as e:
                        raise ModelFormatError(f"{src}: tensor '{name}' is unreadable ({e})") from None
            f["tensors"].visititems(visit)
    except ModelFormatError:
        raise
    except HDF5_READ_ERRORS as e:
        raise ModelFormatError(f"{src}: corrupt weight store ({type(e).__name__}: {e})") from None
    try:
        store = WeightStore(spec, tensors, provenance)
        check_tensors(store, src)
    except ModelFormatError:
        raise
    except RefnetError as e:  # e.g. unknown arch in the spec
        raise ModelFormatError(f"{src}: {e}") from None
    return store


def load_graph(path: Path):
    """Weight store -> float Graph (refnet.Interpreter(graph=...) runs it)."""
    store = read_store(path)
    return store.graph(source=str(path))
