"""Keras HDF5 / .keras importer: keras.applications MobileNet (V1), MobileNetV2 and MobileNetV3
(Large, Small, minimalistic) as saved by `model.save("x.h5")`, `model.save("x.keras")` (a zip of
config.json + model.weights.h5), `model.save_weights("x.h5")` (the legacy layout: layer groups
named after the layers, `weight_names` attributes) or Keras 3's `save_weights("x.weights.h5")`
(`layers/<class>_<n>/vars/<i>`: the layer names are not stored, so layers are matched in model
order, each checked by shape). A saved config says what surrounds the base (fine-tuned heads,
Rescaling / Normalization, nesting): refnet.importers.keras_config.

Keras layer names map onto the seed's slim names:
  V1  conv1 / conv1_bn                 -> MobilenetV1/Conv2d_0
      conv_{dw,pw}_<i>[_bn]            -> MobilenetV1/Conv2d_<i>_{depthwise,pointwise}
      conv_preds (Conv2D 1x1)          -> MobilenetV1/Logits/Conv2d_1c_1x1
  V2  Conv1 / bn_Conv1                 -> MobilenetV2/Conv
      expanded_conv_{depthwise,project}[_BN]      -> MobilenetV2/expanded_conv/...
      block_<i>_{expand,depthwise,project}[_BN]   -> MobilenetV2/expanded_conv_<i>/...
      Conv_1 / Conv_1_bn               -> MobilenetV2/Conv_1
      predictions (Dense [C, N])       -> MobilenetV2/Logits/Conv2d_1c_1x1 ([1, 1, C, N])
  V3  conv / conv_bn                   -> MobilenetV3/Conv
      expanded_conv[_<i>]_{expand,depthwise,project}[_bn] -> MobilenetV3/expanded_conv[_<i>]/...
      ..._squeeze_excite_conv[_1]      -> .../squeeze_excite/Conv[_1]
      conv_1 / conv_1_bn, conv_2, logits -> Conv_1, Conv_2, Logits/Conv2d_1c_1x1
  a user's head / preprocessing layer  -> <scope>/head/<name>, <scope>/preprocess/<name>
Batch norm variables become <layer>/BatchNorm/{gamma,beta,moving_mean,moving_variance} and are
folded on import (refnet.models.fold). Keras's squeeze-excite gate is relu6(x + 3) * (1/6):
the store records se_gate_scale = 1/6 (slim's is 0.16667).
No TensorFlow or Keras import: h5py and NumPy only.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HDF5_READ_ERRORS, ModelFormatError
from ..models import ArchSpec, get_net
from ..models.spec import SE_GATE_SCALE_KERAS
from .common import DEFAULT_RESOLUTION, DM_CANDIDATES, make_store, resolution_note
from .keras_config import KerasStructure, family_of_names, read_structure
from .keras_config import _name as layer_name

IMPORTER_VERSION = "1"
BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")


@dataclass
class KerasLayer:
    name: str
    kind: str  # conv | depthwise | dense | bn (the base's); dense | batch_norm | normalization (head / preprocess)
    vars: dict = field(default_factory=dict)
    part: str = "base"  # base | head | preprocess (refnet.importers.keras_config)


def _open(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ModelFormatError(f"{path}: not a readable HDF5 file ({e})") from None


def _read(ds, path, entry):
    try:
        return np.asarray(ds[()], np.float32)
    except Exception as e:  # h5py raises OSError/ValueError/KeyError on damaged data
        raise ModelFormatError(f"{path}: entry '{entry}' is unreadable ({type(e).__name__}: {e})") from None


def _config(f) -> dict:
    raw = f.attrs.get("model_config")
    if raw is None:
        return {}
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError:
        return {}


def _group_weights(g, name: str, path: Path) -> dict[str, dict]:
    """A layer group's variables by sublayer: {'': {...}} for a plain layer, one entry per
    sublayer ('Conv1/kernel' -> 'Conv1') for a nested model, in file order."""
    wnames = [w.decode() if isinstance(w, bytes) else str(w) for w in g.attrs.get("weight_names", [])]
    out: dict[str, dict] = {}
    for wn in wnames:
        if wn not in g:
            raise ModelFormatError(f"{path}: entry '{name}/{wn}' is missing")
        parts = wn.split("/")
        owner = parts[-2] if len(parts) > 1 else ""
        out.setdefault(owner, {})[parts[-1].split(":")[0]] = _read(g[wn], path, f"{name}/{wn}")
    return out


def read_legacy(f, path: Path, keras_config: dict | None = None) -> tuple[list[KerasLayer], KerasStructure | None]:
    """The weighted layers of a legacy-layout file (groups named after layers), and the model's
    structure when the file has its config (a model.save; a save_weights file has none: then
    `keras_config`, the model's to_json(), if given)."""
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in group.attrs:
        raise ModelFormatError(f"{path}: no 'layer_names' attribute: not a Keras weights file")
    config = keras_config or _config(f)
    structure = read_structure(config, str(path)) if config else None
    classes = {layer_name(l): l for l in structure.base_layers} if structure else {}
    layers = []
    for raw in group.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if name not in group:
            raise ModelFormatError(f"{path}: layer group '{name}' is missing")
        for owner, vars_ in _group_weights(group[name], name, path).items():
            if structure is not None and name == structure.base:
                layers.append(_classified(owner, vars_, classes.get(owner, {}), path))
            elif structure is not None and name in structure.weighted:
                kind = structure.weighted[name]
                layers.append(KerasLayer(name, kind, vars_, "preprocess" if kind == "normalization" else "head"))
            else:
                layers.append(_classified(name, vars_, classes.get(name, {}), path))
    return layers, structure


def _classified(name: str, vars_: dict, layer_config: dict, path: Path) -> KerasLayer:
    """A layer's kind from its variables (and its class, when the config gives it)."""
    cls = layer_config.get("class_name", "")
    if "gamma" in vars_ or "moving_mean" in vars_:
        kind = "bn"
    elif "depthwise_kernel" in vars_ or cls == "DepthwiseConv2D" or \
            (not cls and "depthwise" in name and "kernel" in vars_):
        kind = "depthwise"
        vars_["kernel"] = vars_.pop("depthwise_kernel", vars_.get("kernel"))
    elif "kernel" in vars_ and vars_["kernel"].ndim == 2:
        kind = "dense"
    elif "kernel" in vars_ and vars_["kernel"].ndim == 4:
        kind = "conv"
    else:
        raise ModelFormatError(f"{path}: layer '{name}' ({cls or 'unknown class'}) has "
                               f"variables {sorted(vars_)}: not part of a MobileNet")
    return KerasLayer(name, kind, vars_)


_KERAS3_KINDS = {"conv2d": "conv", "depthwise_conv2d": "depthwise", "batch_normalization": "bn",
                 "dense": "dense", "normalization": "normalization"}


def read_keras3(layers_group, path: Path, skip: tuple[str, ...] = ()) -> list[KerasLayer]:
    """`layers/<class>[_<n>]/vars/<i>`: per class, n counts the layers in model order.
    `layers_group` is a file's `layers` or a nested model's; entries in `skip` are left out."""
    queues: dict[str, list[tuple[int, KerasLayer]]] = {}
    for key in layers_group.keys():
        if key in skip:
            continue
        if "layers" in layers_group[key]:  # a nested model: read with its config (_keras3_queues)
            raise ModelFormatError(f"{path}: entry 'layers/{key}' is a nested model, and a weights-only file "
                                   f"does not say what it is: refnet convert --keras-config model.json, the "
                                   f"model's to_json() (or save the whole model as .keras)")
        m = re.fullmatch(r"(.*?)(?:_(\d+))?", key)
        cls, n = m.group(1), int(m.group(2) or 0)
        g = layers_group[key]
        nvars = len(g["vars"]) if "vars" in g else 0
        if nvars == 0:
            continue
        if cls not in _KERAS3_KINDS:
            raise ModelFormatError(f"{path}: layer entry 'layers/{key}' has weights but is no "
                                   f"conv/depthwise/batch-norm/dense layer")
        kind = _KERAS3_KINDS[cls]
        vals = []
        for i in range(nvars):
            entry = f"layers/{key}/vars/{i}"
            if str(i) not in g["vars"]:
                raise ModelFormatError(f"{path}: entry '{entry}' is missing")
            vals.append(_read(g["vars"][str(i)], path, entry))
        if kind == "bn":
            if nvars != 4:
                raise ModelFormatError(f"{path}: batch norm 'layers/{key}' has {nvars} variables, "
                                       f"expected 4 (gamma, beta, moving_mean, moving_variance)")
            vars_ = dict(zip(BN_VARS, vals))
        elif kind == "normalization":
            vars_ = dict(zip(("mean", "variance", "count"), vals))
        else:
            vars_ = dict(zip(("kernel", "bias"), vals))
        queues.setdefault(kind, []).append((n, KerasLayer(key, kind, vars_)))
    return {k: [l for _, l in sorted(v, key=lambda t: t[0])] for k, v in queues.items()}


# --- names -> slim --------------------------------------------------------------------------

def _v1_name(name: str) -> tuple[str, bool] | None:
    """Keras MobileNet (V1) layer name -> (slim layer under the scope, is_batch_norm)."""
    s = "MobilenetV1"
    if name in ("conv1", "conv1_bn"):
        return f"{s}/Conv2d_0", name.endswith("bn")
    if name == "conv_preds":
        return f"{s}/Logits/Conv2d_1c_1x1", False
    m = re.fullmatch(r"conv_(dw|pw)_(\d+)(_bn)?", name)
    if m:
        part = "depthwise" if m.group(1) == "dw" else "pointwise"
        return f"{s}/Conv2d_{m.group(2)}_{part}", bool(m.group(3))
    return None


def _v2_name(name: str) -> tuple[str, bool] | None:
    """Keras MobileNetV2 layer name -> (slim layer under the scope, is_batch_norm)."""
    s = "MobilenetV2"
    if name in ("Conv1", "bn_Conv1"):
        return f"{s}/Conv", name.startswith("bn")
    if name in ("Conv_1", "Conv_1_bn"):
        return f"{s}/Conv_1", name.endswith("bn")
    if name == "predictions":
        return f"{s}/Logits/Conv2d_1c_1x1", False
    m = re.fullmatch(r"(?:expanded_conv|block_(\d+))_(expand|depthwise|project)(_BN)?", name)
    if m:
        block = f"expanded_conv_{m.group(1)}" if m.group(1) else "expanded_conv"
        return f"{s}/{block}/{m.group(2)}", bool(m.group(3))
    return None


def _v3_name(name: str) -> tuple[str, bool] | None:
    s = "MobilenetV3"
    if name in ("conv", "conv_bn"):
        return f"{s}/Conv", name.endswith("bn")
    if name in ("conv_1", "conv_1_bn"):
        return f"{s}/Conv_1", name.endswith("bn")
    if name == "conv_2":
        return f"{s}/Conv_2", False
    if name == "logits":
        return f"{s}/Logits/Conv2d_1c_1x1", False
    m = re.fullmatch(r"expanded_conv(?:_(\d+))?_(expand|depthwise|project|squeeze_excite_conv(?:_1)?)(_bn)?",
                     name)
    if m:
        block = f"expanded_conv_{m.group(1)}" if m.group(1) else "expanded_conv"
        part = {"squeeze_excite_conv": "squeeze_excite/Conv",
                "squeeze_excite_conv_1": "squeeze_excite/Conv_1"}.get(m.group(2), m.group(2))
        return f"{s}/{block}/{part}", bool(m.group(3))
    return None


def _slim_vars(layer: KerasLayer, slim: str, is_bn: bool, depthwise: bool) -> dict[str, np.ndarray]:
    out = {}
    if is_bn:
        for k in BN_VARS:
            out[f"{slim}/BatchNorm/{k}"] = layer.vars[k]
        return out
    w = layer.vars["kernel"]
    if layer.kind == "dense":
        w = w.reshape(1, 1, *w.shape)
    out[f"{slim}/depthwise_weights" if depthwise else f"{slim}/weights"] = w
    if "bias" in layer.vars:
        out[f"{slim}/biases"] = layer.vars["bias"]
    return out


def _family_of(names: set[str]) -> str:
    family = family_of_names(names)
    if family == "mobilenet_v3":
        blocks = [int(m.group(1)) for n in names
                  if (m := re.fullmatch(r"expanded_conv_(\d+)_project", n))]
        large = max(blocks, default=0) >= 14
        se = any("squeeze_excite" in n for n in names)
        return ("mobilenet_v3_large" if large else "mobilenet_v3_small") + ("" if se else "_minimalistic")
    if family is None:
        raise ModelFormatError("no 'conv1'/'conv_dw_1' (MobileNet V1), 'Conv1'/'bn_Conv1' (MobileNetV2) or "
                               "'conv'/'conv_bn' (MobileNetV3) layer")
    return family


def _structure_kwargs(structure: KerasStructure | None) -> dict:
    """ArchSpec arguments a saved config fixes: the head and preprocessing, and softmax."""
    if structure is None:
        return {}
    kwargs = {"preprocess": structure.preprocess}
    if structure.head is not None:
        kwargs["head"] = structure.head
        kwargs["softmax"] = bool(structure.head) and structure.head[-1].get("activation") == "SOFTMAX"
    elif structure.softmax is not None:
        kwargs["softmax"] = structure.softmax
    return kwargs


def import_keras_h5(path: Path, spec: ArchSpec | None = None, resolution: int | None = None,
                    keras_config: dict | None = None):
    """Keras .h5 / .weights.h5 -> WeightStore (batch norm folded). `resolution` is used when the
    file records none (a weights-only file, a model saved with an unknown input size);
    `keras_config` (model.to_json() as a dict) gives a weights-only file its architecture."""
    path = Path(path)
    f = _open(path)
    try:
        with f:
            if "layers" in f and "layer_names" not in f.attrs and "model_weights" not in f:
                if keras_config is None:
                    return _import_ordered(path, read_keras3(f["layers"], path), spec, resolution)
                structure = read_structure(keras_config, f"{path} (--keras-config)")
                queues = _keras3_queues(f, structure, path)
                return _import_ordered(path, queues, spec, structure.resolution or resolution,
                                       structure=structure, how="Keras 3 .weights.h5 with the model's config "
                                       "(--keras-config): layers matched in model order")
            layers, structure = read_legacy(f, path, keras_config)
    except ModelFormatError:
        raise
    except HDF5_READ_ERRORS as e:
        raise ModelFormatError(f"{path}: corrupt Keras HDF5 file ({type(e).__name__}: {e})") from None
    spec_given = spec is not None
    family, variables = _legacy_to_slim(path, layers, spec)
    res = structure.resolution if structure else None
    if spec is None:
        from .common import infer_spec
        spec = infer_spec(variables, str(path), [family], resolution=res or resolution or DEFAULT_RESOLUTION,
                          se_gate_scale=SE_GATE_SCALE_KERAS, **_structure_kwargs(structure))
    fmt = "keras-h5" if structure else "keras-weights-h5"
    notes = [] if res else [resolution_note(spec.resolution, given=bool(resolution) or spec_given)]
    if structure is not None and structure.base:
        notes.insert(0, f"nested base '{structure.base}' + head")
    return make_store(spec, variables, path, fmt, "refnet.importers.keras_h5", IMPORTER_VERSION,
                      notes="; ".join(notes))


def _head_variables(layer: KerasLayer, scope: str) -> dict[str, np.ndarray]:
    """A head / preprocessing layer's variables under refnet's names (refnet.models.spec)."""
    name = f"{scope}/{layer.part}/{layer.name}"
    if layer.kind == "dense":
        out = {f"{name}/weights": layer.vars["kernel"]}
        if "bias" in layer.vars:
            out[f"{name}/biases"] = layer.vars["bias"]
        return out
    if layer.kind in ("batch_norm", "bn"):
        return {f"{name}/{k}": layer.vars[k].reshape(-1) for k in BN_VARS if k in layer.vars}
    if layer.kind == "normalization":
        return {f"{name}/{k}": layer.vars[k].reshape(-1) for k in ("mean", "variance")}
    raise AssertionError(layer.kind)


def _legacy_to_slim(path, layers, spec):
    names = {l.name for l in layers if l.part == "base"}
    try:
        family = spec.arch if spec else _family_of(names)
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None
    rule = {"mobilenet_v1": _v1_name, "mobilenet_v2": _v2_name}.get(family, _v3_name)
    scope = get_net(ArchSpec(family, 1.0, 32)).scope
    variables: dict[str, np.ndarray] = {}
    for layer in layers:
        if layer.part != "base":
            variables.update(_head_variables(layer, scope))
            continue
        mapped = rule(layer.name)
        if mapped is None:
            raise ModelFormatError(f"{path}: layer '{layer.name}' has no counterpart in the "
                                   f"seed's {family}")
        slim, is_bn = mapped
        variables.update(_slim_vars(layer, slim, is_bn, layer.kind == "depthwise"))
    return family, variables


def keras_slim_variables(path) -> tuple[str, dict[str, np.ndarray]]:
    """A legacy Keras .h5 as (family, unfolded variables under the seed's slim names)."""
    path = Path(path)
    with _open(path) as f:
        layers, _ = read_legacy(f, path)
    return _legacy_to_slim(path, layers, None)


def _map_ordered(net, queues: dict) -> dict[str, np.ndarray] | None:
    """Keras 3 weights (per class, in model order) onto `net`'s layers, or None if they do not fit."""
    pos = {k: 0 for k in queues}
    variables = {}

    def take(kind):
        q = queues.get(kind, [])
        if pos.get(kind, 0) >= len(q):
            return None
        pos[kind] = pos.get(kind, 0) + 1
        return q[pos[kind] - 1]

    for layer in net.layers:
        if layer.kind == "dense" or layer.kind == "scale_shift" and layer.config["source"] != "rescaling":
            kind = {"dense": "dense", "batch_norm": "bn"}.get(layer.config.get("source", layer.kind), "normalization")
            kl = take(kind)
            if kl is None:
                return None
            part, keras_name = layer.name.split("/")[-2:]
            variables.update(_head_variables(KerasLayer(keras_name, kind, kl.vars, part), net.scope))
            continue
        if layer.kind not in ("conv", "depthwise"):
            continue
        is_logits = layer.name.endswith("Logits/Conv2d_1c_1x1")
        kl = None
        if is_logits and queues.get("dense"):
            kl = take("dense")
        else:
            kl = take(layer.kind)
        if kl is None:
            return None
        v = _slim_vars(kl, layer.name, False, layer.kind == "depthwise")
        if layer.norm == "batch_norm":
            bn = take("bn")
            if bn is None:
                return None
            v.update(_slim_vars(bn, layer.name, True, False))
        variables.update(v)
    if any(pos.get(k, 0) != len(q) for k, q in queues.items()):
        return None
    for name, shape in net.variables().items():
        if name not in variables or tuple(variables[name].shape) != tuple(shape):
            return None
    return variables


ARCHS_BY_DEPTHWISE = {13: ["mobilenet_v1"], 17: ["mobilenet_v2"],
                      15: ["mobilenet_v3_large", "mobilenet_v3_large_minimalistic"],
                      11: ["mobilenet_v3_small", "mobilenet_v3_small_minimalistic"]}


def _import_ordered(path: Path, queues: dict, spec: ArchSpec | None, resolution: int | None = None,
                    source_format: str = "keras-weights-h5", how: str | None = None,
                    structure: KerasStructure | None = None):
    given = spec is not None or resolution is not None
    if spec is not None:
        candidates = [spec]
    else:
        n_dw = len(queues.get("depthwise", []))
        archs = ARCHS_BY_DEPTHWISE.get(n_dw, [])
        if structure is not None:  # the config names the family; the weights tell V3 Large from Small
            archs = [a for a in archs if a.startswith(structure.family)]
        classes = None
        last = (queues.get("dense") or queues.get("conv") or [None])[-1]
        if last is not None and "bias" in last.vars:
            classes = int(last.vars["bias"].shape[0])
        candidates = [ArchSpec(a, dm, resolution or DEFAULT_RESOLUTION, classes or 1001, fg,
                               se_gate_scale=SE_GATE_SCALE_KERAS, **_structure_kwargs(structure))
                      for a in archs for dm in DM_CANDIDATES
                      for fg in ((True, False) if dm < 1 else (False, True))]
    for cand in candidates:
        variables = _map_ordered(get_net(cand), queues)
        if variables is not None:
            return make_store(cand, variables, path, source_format, "refnet.importers.keras_h5",
                              IMPORTER_VERSION,
                              notes=how or ("Keras 3 .weights.h5 (no layer names): layers matched in "
                                            "model order; " + resolution_note(cand.resolution, given)))
    hint = "" if structure else ("; a fine-tuned model's weights need its architecture: refnet convert "
                                 "--keras-config model.json, the model's to_json()")
    raise ModelFormatError(f"{path}: the layers of this {'.keras' if structure else '.weights.h5'} match no "
                           f"MobileNet V1/V2/V3 definition ({sum(len(q) for q in queues.values())} weighted "
                           f"layers){hint}")


# --- .keras archives --------------------------------------------------------------------------

def _keras3_queues(f, structure: KerasStructure, path: Path) -> dict:
    """Keras 3 weights by class in model order; a nested base's first, then the head's."""
    if "layers" not in f:
        raise ModelFormatError(f"{path}: the weights file has no 'layers' group")
    nested = [k for k in f["layers"] if "layers" in f["layers"][k]]
    if structure.base is None:
        return read_keras3(f["layers"], path)
    if len(nested) != 1:
        raise ModelFormatError(f"{path}: the config nests '{structure.base}' but the weights have "
                               f"{len(nested)} nested groups")
    queues = read_keras3(f["layers"][nested[0]]["layers"], path)
    for kind, layers in read_keras3(f["layers"], path, skip=(nested[0],)).items():
        queues.setdefault(kind, []).extend(layers)  # the head's come after the base's
    return queues


def import_keras_archive(path: Path, spec: ArchSpec | None = None, resolution: int | None = None):
    """A Keras 3 .keras file (a zip of config.json and model.weights.h5): the config says the
    resolution, the head and which layers nest; the weights are matched in model order."""
    import io
    import zipfile

    import h5py

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
            if missing:
                raise ModelFormatError(f"{path}: a zip without {' and '.join(missing)}: not a .keras file")
            config = json.loads(z.read("config.json"))
            weights = z.read("model.weights.h5")
    except (zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise ModelFormatError(f"{path}: corrupt .keras archive ({type(e).__name__}: {e})") from None
    if not isinstance(config, dict):
        raise ModelFormatError(f"{path}: config.json is not a Keras model config")
    structure = read_structure(config, str(path))
    try:
        with h5py.File(io.BytesIO(weights), "r") as f:
            if "layers" not in f:
                raise ModelFormatError(f"{path}: model.weights.h5 has no 'layers' group")
            queues = _keras3_queues(f, structure, path)
    except ModelFormatError:
        raise
    except HDF5_READ_ERRORS as e:
        raise ModelFormatError(f"{path}: corrupt model.weights.h5 in the archive ({type(e).__name__}: {e})") from None
    res = structure.resolution
    chosen = res or resolution
    how = ("nested base '%s' + head; " % structure.base if structure.base else "") + \
        "layers matched in model order (config.json)" + \
        ("" if res else "; " + resolution_note(chosen or DEFAULT_RESOLUTION, bool(resolution)))
    return _import_ordered(path, queues, spec, chosen, source_format="keras-archive", how=how,
                           structure=structure)
