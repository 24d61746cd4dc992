"""A saved Keras model's config (model_config in an .h5, config.json in a .keras) read as refnet
needs it: which MobileNet base, what comes before it and what comes after.

Users hold MobileNets as keras.applications models, either as they are (their own top: the
seed's logits) or fine-tuned: the base without its top, nested as one layer or spread flat in the
outer model, then a head of their own. Read here, without Keras:

  before the base  Rescaling, Normalization (-> ArchSpec.preprocess; V3's own Rescaling too);
                   InputLayer and data augmentation (Random*: identity at inference) skipped
  the base         keras.applications MobileNet (V1), MobileNetV2, MobileNetV3 Large/Small
                   (family from its layer names)
  after the base   GlobalAveragePooling2D, Flatten, Reshape, Dense (any activation refnet runs),
                   BatchNormalization, Activation / Softmax / ReLU (-> ArchSpec.head);
                   Dropout-like layers skipped (identity at inference)

The outer model must be a chain (each layer reads the one before it); anything else, and any
layer refnet does not know, is a typed error naming the layer and its class.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ModelFormatError

NESTED_CLASSES = {"Functional", "Model", "Sequential"}
# Identity at inference (training-only noise, augmentation, regularisers).
PASSIVE = {"InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianDropout",
           "GaussianNoise", "AlphaDropout", "ActivityRegularization", "RandomFlip", "RandomRotation",
           "RandomZoom", "RandomContrast", "RandomTranslation", "RandomCrop", "RandomBrightness"}
# Keras activation name -> refnet's (refnet.models.graph_builder runs each).
ACTIVATIONS = {"linear": "NONE", "relu": "RELU", "relu6": "RELU6", "softmax": "SOFTMAX",
               "sigmoid": "LOGISTIC", "hard_swish": "HARD_SWISH", "hard_silu": "HARD_SWISH",
               "swish": "SWISH", "silu": "SWISH"}
# The last batch norm of each family's features; the activation after it ends the base.
LAST_FEATURE_BN = {"mobilenet_v1": "conv_pw_13_bn", "mobilenet_v2": "Conv_1_bn", "mobilenet_v3": "conv_1_bn"}
# keras.applications' own classifier layer (the seed's logits).
OWN_TOP = {"mobilenet_v1": "conv_preds", "mobilenet_v2": "predictions", "mobilenet_v3": "logits"}


@dataclass
class KerasStructure:
    family: str  # mobilenet_v1 | mobilenet_v2 | mobilenet_v3 (Large/Small told by the weights)
    base: str | None  # the nested base's layer name; None when the base's layers are the model's
    base_layers: list = field(default_factory=list)  # the base's layer configs
    preprocess: tuple = ()
    head: tuple | None = None  # None: keras.applications' own top
    resolution: int | None = None
    softmax: bool | None = None  # keras.applications' top: whether it ends in softmax
    weighted: dict = field(default_factory=dict)  # head / preprocess layer with weights -> its kind

    @property
    def layer_names(self) -> set[str]:
        return {_name(l) for l in self.base_layers}


def _name(layer: dict) -> str:
    return layer.get("config", {}).get("name") or layer.get("name", "?")


def _inbound(layer: dict) -> list[str]:
    """Names of the layers a functional layer reads (Keras 2 and Keras 3 config formats)."""
    names: list[str] = []

    def walk(x):
        if isinstance(x, dict):
            if "keras_history" in x:
                names.append(x["keras_history"][0])
            elif isinstance(x.get("config"), dict) and "keras_history" in x["config"]:
                names.append(x["config"]["keras_history"][0])
            else:
                for v in x.values():
                    walk(v)
        elif isinstance(x, list):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):  # Keras 2: [name, 0, 0, {}]
                names.append(x[0])
            else:
                for v in x:
                    walk(v)

    walk(layer.get("inbound_nodes", []))
    return names


def _activation(value, where: str) -> str:
    if isinstance(value, dict):  # Keras 3 may serialise a function as {"class_name": ..., "config": name}
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    act = ACTIVATIONS.get(str(value))
    if act is None:
        raise ModelFormatError(f"{where} has activation '{value}'; refnet runs "
                               f"{', '.join(sorted(ACTIVATIONS))}")
    return act


def family_of_names(names: set[str]) -> str | None:
    if "conv1" in names and "conv_dw_1" in names:
        return "mobilenet_v1"
    if "Conv1" in names or "bn_Conv1" in names:
        return "mobilenet_v2"
    if "conv" in names or "conv_bn" in names:
        return "mobilenet_v3"
    return None


def _resolution(layers: list[dict]) -> int | None:
    for l in layers:
        if l.get("class_name") == "InputLayer":
            c = l.get("config", {})
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            if shape and len(shape) == 4 and shape[1]:
                return int(shape[1])
    return None


def _split_base(layers: list[dict], family: str, where: str) -> tuple[list, list, list]:
    """(before, base, after) of a layer list holding a keras.applications base's layers."""
    names = [_name(l) for l in layers]
    first = {"mobilenet_v1": "conv1", "mobilenet_v2": "Conv1", "mobilenet_v3": "conv"}[family]
    if first not in names:
        raise ModelFormatError(f"{where}: no '{first}' layer: not a keras.applications {family} base")
    start = names.index(first)
    if OWN_TOP[family] in names:  # the base keeps keras.applications' top
        end = names.index(OWN_TOP[family]) + 1
        while end < len(layers) and layers[end].get("class_name") in ("Flatten", "Reshape", "Activation"):
            end += 1  # keras.applications' own Reshape/Flatten and softmax after the logits
        return layers[:start], layers[start:end], layers[end:]
    last_bn = LAST_FEATURE_BN[family]
    if last_bn not in names:
        raise ModelFormatError(f"{where}: no '{last_bn}' layer: a {family} base cut short (refnet reads "
                               f"the whole feature extractor)")
    end = names.index(last_bn) + 1
    # the base's final activation: one ReLU/Activation layer (Keras 2's V3: add, ReLU, multiply ops)
    while end < len(layers) and end <= names.index(last_bn) + 4 and \
            layers[end].get("class_name") in ("ReLU", "Activation", "Multiply", "Add", "TFOpLambda") and \
            re.fullmatch(r"(out_relu|conv_pw_13_relu|activation(_\d+)?|re_lu(_\d+)?|multiply(_\d+)?|"
                         r"add(_\d+)?|tf\..*)", names[end]):
        end += 1
    return layers[:start], layers[start:end], layers[end:]


def _preprocess_layer(layer: dict, where: str) -> dict | None:
    cls, c, name = layer.get("class_name"), layer.get("config", {}), _name(layer)
    if cls in PASSIVE:
        return None
    if cls == "Rescaling":
        return {"kind": "rescaling", "name": name, "scale": c.get("scale", 1.0), "offset": c.get("offset", 0.0)}
    if cls == "Normalization":
        if c.get("invert"):
            raise ModelFormatError(f"{where}: Normalization '{name}' has invert=True; refnet reads the "
                                   f"forward normalization")
        axis = c.get("axis", -1)
        if axis not in (-1, 3, [-1], [3]):
            raise ModelFormatError(f"{where}: Normalization '{name}' normalizes axis {axis}; refnet reads the "
                                   f"channel axis (-1)")
        return {"kind": "normalization", "name": name}
    raise ModelFormatError(f"{where}: layer '{name}' ({cls}) before the base: refnet reads Rescaling and "
                           f"Normalization there (for preprocess_input, use "
                           f"keras.layers.Rescaling(1/127.5, offset=-1))")


def _head_layer(layer: dict, where: str) -> dict | None:
    cls, c, name = layer.get("class_name"), layer.get("config", {}), _name(layer)
    if cls in PASSIVE:
        return None
    if cls == "GlobalAveragePooling2D":
        return {"kind": "global_pool", "name": name, "keepdims": bool(c.get("keepdims", False))}
    if cls == "Flatten":
        return {"kind": "flatten", "name": name}
    if cls == "Reshape":
        return {"kind": "reshape", "name": name, "shape": list(c.get("target_shape", []))}
    if cls == "Dense":
        return {"kind": "dense", "name": name, "units": int(c["units"]), "use_bias": bool(c.get("use_bias", True)),
                "activation": _activation(c.get("activation", "linear"), f"{where}: Dense '{name}'")}
    if cls == "BatchNormalization":
        if c.get("axis", -1) not in (-1, 1, 3, [-1], [1], [3]):
            raise ModelFormatError(f"{where}: BatchNormalization '{name}' normalizes axis {c.get('axis')}")
        return {"kind": "batch_norm", "name": name, "epsilon": float(c.get("epsilon", 1e-3)),
                "center": bool(c.get("center", True)), "scale": bool(c.get("scale", True))}
    if cls == "Activation":
        return {"kind": "activation", "name": name,
                "activation": _activation(c.get("activation"), f"{where}: Activation '{name}'")}
    if cls == "Softmax":
        if c.get("axis", -1) not in (-1, [-1]):
            raise ModelFormatError(f"{where}: Softmax '{name}' over axis {c.get('axis')}; refnet reads axis -1")
        return {"kind": "activation", "name": name, "activation": "SOFTMAX"}
    if cls == "ReLU":
        if c.get("negative_slope") or c.get("threshold") or c.get("max_value") not in (None, 6, 6.0):
            raise ModelFormatError(f"{where}: ReLU '{name}' with max_value={c.get('max_value')}, "
                                   f"negative_slope={c.get('negative_slope')}, threshold={c.get('threshold')}; "
                                   f"refnet reads ReLU and ReLU(6)")
        return {"kind": "activation", "name": name, "activation": "RELU" if c.get("max_value") is None else "RELU6"}
    raise ModelFormatError(f"{where}: layer '{name}' ({cls}) after the base: refnet reads heads of "
                           f"GlobalAveragePooling2D, Flatten, Reshape, Dropout, Dense, BatchNormalization "
                           f"and activations")


def _check_chain(layers: list[dict], where: str) -> None:
    """Each layer reads exactly the one before it (a Sequential model is a chain by construction)."""
    for prev, layer in zip(layers, layers[1:]):
        inbound = _inbound(layer)
        if inbound and inbound != [_name(prev)]:
            raise ModelFormatError(f"{where}: layer '{_name(layer)}' reads {inbound}, not the layer before it "
                                   f"('{_name(prev)}'); refnet reads a base followed by a chain of layers")


def read_structure(config: dict, where: str) -> KerasStructure:
    """The base, its preprocessing and its head from a saved model config (typed errors otherwise)."""
    outer = config.get("config", {}).get("layers", [])
    if not outer:
        raise ModelFormatError(f"{where}: the saved config lists no layers")
    nested = [l for l in outer if l.get("class_name") in NESTED_CLASSES]
    if len(nested) > 1:
        raise ModelFormatError(f"{where}: {len(nested)} nested models ({', '.join(_name(l) for l in nested)}); "
                               f"refnet reads one MobileNet base and a head")
    if nested:
        base_cfg = nested[0]
        base_layers_all = base_cfg.get("config", {}).get("layers", [])
        family = family_of_names({_name(l) for l in base_layers_all})
        if family is None:
            raise ModelFormatError(f"{where}: nested model '{_name(base_cfg)}' is not a keras.applications "
                                   f"MobileNet (no 'conv1', 'Conv1' or 'conv' layer)")
        i = outer.index(base_cfg)
        before_outer, after_outer = outer[:i], outer[i + 1:]
        if config.get("class_name") != "Sequential":
            _check_chain(outer, where)
        inner_before, base_layers, inner_after = _split_base(base_layers_all, family, f"{where}: '{_name(base_cfg)}'")
        before, after = before_outer + inner_before, inner_after + after_outer
        base = _name(base_cfg)
        resolution = _resolution(outer) or _resolution(base_layers_all)
    else:
        family = family_of_names({_name(l) for l in outer})
        if family is None:
            raise ModelFormatError(f"{where}: no 'conv1'/'conv_dw_1' (MobileNet V1), 'Conv1'/'bn_Conv1' "
                                   f"(MobileNetV2) or 'conv'/'conv_bn' (MobileNetV3) layer")
        before, base_layers, after = _split_base(outer, family, where)
        base, resolution = None, _resolution(outer)
        _check_chain([base_layers[-1]] + after, where)
    s = KerasStructure(family, base, base_layers, resolution=resolution)
    s.preprocess = tuple(p for l in before if (p := _preprocess_layer(l, where)) is not None)
    own_top = OWN_TOP[family] in s.layer_names
    head = [h for l in after if (h := _head_layer(l, where)) is not None]
    if own_top:
        if head:
            raise ModelFormatError(f"{where}: layers after keras.applications' own top ('{OWN_TOP[family]}'): "
                                   f"save the base with include_top=False under a head")
        s.softmax = any(_name(l) == "predictions" and str(l.get("config", {}).get("activation")) == "softmax"
                        for l in base_layers)
    else:
        s.head = tuple(head)  # a Dense straight on the feature map acts on its channels, as in Keras
    s.weighted = {p["name"]: p["kind"] for p in s.preprocess if p["kind"] == "normalization"}
    s.weighted.update({h["name"]: h["kind"] for h in head if h["kind"] in ("dense", "batch_norm")})
    return s
