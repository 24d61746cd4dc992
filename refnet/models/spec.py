"""Architecture specs: every MobileNet variant as a flat list of layers with the seed's names.

A spec is the single description the rest of refnet works from: MAC/parameter counting
(refnet.models.counting), the float Graph builder (refnet.models.build), the importers (which map
Keras / TF-slim / .tflite names onto spec names) and the weight store (which records the spec's
arguments and checks every tensor against it).

Names are the TF-slim scopes of the seed's checkpoints (tensorflow/models research/slim/nets):
`MobilenetV2/expanded_conv_3/expand`, `MobilenetV3/expanded_conv_4/squeeze_excite/Conv`,
`MobilenetV1/Conv2d_5_pointwise`, `<scope>/Logits/Conv2d_1c_1x1`, ...

Variables of a layer, in slim's naming and layout (channels last, HWIO):
  conv          <name>/weights            [kh, kw, cin, cout]
  depthwise     <name>/depthwise_weights  [kh, kw, cin, 1]
  batch norm    <name>/BatchNorm/{gamma,beta,moving_mean,moving_variance}  [cout]
  no batch norm <name>/biases             [cout]
After batch-norm folding (refnet.models.fold) every conv/depthwise layer has exactly
<name>/weights (or depthwise_weights) and <name>/biases.

A Keras model fine-tuned by a user replaces the seed's logits with its own head (ArchSpec.head:
the Keras layers after the base's features, in order) and may scale its input first
(ArchSpec.preprocess: Rescaling, Normalization). Those layers live under <scope>/head/<keras name>
and <scope>/preprocess/<keras name>, their tensors in 2-D (after pooling or flattening):
  dense         <name>/weights [cin, cout], <name>/biases [cout]   (Keras's kernel layout)
  batch norm    <name>/{gamma,beta,moving_mean,moving_variance} [c]  -> folded <name>/{scale,shift}
  normalization <name>/{mean,variance} [c]                           -> folded <name>/{scale,shift}
  rescaling     (no variables: scale and offset are in the spec)     -> folded <name>/{scale,shift}
"""
from __future__ import annotations

from dataclasses import dataclass, field, asdict

BN_EPSILON = 1e-3  # slim's and Keras's MobileNet batch-norm epsilon
SE_GATE_SCALE_SLIM = 0.16667  # slim's hard sigmoid: relu6(x + 3) * 0.16667 (mobilenet_v3.py)
SE_GATE_SCALE_KERAS = 1.0 / 6.0  # keras.applications: relu6(x + 3) * (1 / 6)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The seed's channel rounding: nearest multiple of `divisor` (at least `min_value`,
    default `divisor`), bumped up one step if rounding lost more than 10 %."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclass
class Layer:
    name: str
    kind: str  # conv | depthwise | global_pool | add | mul | squeeze | softmax
    inputs: tuple[str, ...]  # names of the layers read ("input" = the image)
    out_shape: tuple[int, int, int]  # H, W, C of the output (batch 1)
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    cin: int = 0
    cout: int = 0
    activation: str = "NONE"  # NONE | RELU | RELU6 | HARD_SWISH | HARD_SIGMOID (+ SOFTMAX, LOGISTIC, SWISH in a head)
    norm: str | None = None  # "batch_norm" | "biases" | None
    config: dict = field(default_factory=dict)  # a head/preprocess layer's Keras settings

    @property
    def weight_name(self) -> str:
        return f"{self.name}/depthwise_weights" if self.kind == "depthwise" else f"{self.name}/weights"

    @property
    def weight_shape(self) -> tuple[int, ...]:
        kh, kw = self.kernel
        if self.kind == "depthwise":
            return (kh, kw, self.cin, 1)
        return (kh, kw, self.cin, self.cout)

    def variables(self) -> dict[str, tuple[int, ...]]:
        """The slim checkpoint variables of this layer (unfolded), name -> shape."""
        if self.kind == "dense":
            v = {self.weight_name: (self.cin, self.cout)}
            if self.config.get("use_bias", True):
                v[f"{self.name}/biases"] = (self.cout,)
            return v
        if self.kind == "scale_shift":
            c = (self.cout,)
            source = self.config["source"]
            if source == "batch_norm":
                names = ["moving_mean", "moving_variance"] + (["gamma"] if self.config.get("scale", True) else []) + \
                    (["beta"] if self.config.get("center", True) else [])
                return {f"{self.name}/{n}": c for n in names}
            if source == "normalization":
                return {f"{self.name}/mean": c, f"{self.name}/variance": c}
            return {}
        if self.kind not in ("conv", "depthwise"):
            return {}
        v = {self.weight_name: self.weight_shape}
        if self.norm == "batch_norm":
            for p in ("gamma", "beta", "moving_mean", "moving_variance"):
                v[f"{self.name}/BatchNorm/{p}"] = (self.cout,)
        elif self.norm == "biases":
            v[f"{self.name}/biases"] = (self.cout,)
        return v

    def folded_variables(self) -> dict[str, tuple[int, ...]]:
        """The tensors refnet stores for this layer (batch norm folded into weights + biases)."""
        if self.kind == "dense":
            return {self.weight_name: (self.cin, self.cout), f"{self.name}/biases": (self.cout,)}
        if self.kind == "scale_shift":
            c = (self.cout,) if self.config.get("per_channel", True) else ()
            return {f"{self.name}/scale": c, f"{self.name}/shift": c}
        if self.kind not in ("conv", "depthwise"):
            return {}
        return {self.weight_name: self.weight_shape, f"{self.name}/biases": (self.cout,)}


@dataclass
class ArchSpec:
    """Arguments that determine an architecture; with them the layer list is rebuilt exactly."""
    arch: str
    depth_multiplier: float = 1.0
    resolution: int = 224
    num_classes: int = 1001
    # None: as the seed's checkpoints (and keras.applications) were built - on when dm < 1
    finegrain_classification_mode: bool | None = None
    se_gate_scale: float = SE_GATE_SCALE_SLIM
    softmax: bool = True
    # None: the seed's logits; else a Keras head after the features (dicts, see _Builder.head)
    head: tuple | None = None
    preprocess: tuple = ()  # Keras Rescaling / Normalization layers before the first conv

    def __post_init__(self):
        self.depth_multiplier = float(self.depth_multiplier)
        self.resolution = int(self.resolution)
        self.num_classes = int(self.num_classes)
        if self.finegrain_classification_mode is None:
            self.finegrain_classification_mode = self.depth_multiplier < 1
        self.finegrain_classification_mode = bool(self.finegrain_classification_mode)
        if self.head is not None:
            self.head = tuple(dict(h) for h in self.head)
        self.preprocess = tuple(dict(p) for p in self.preprocess)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ArchSpec":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class Net:
    spec: ArchSpec
    scope: str
    layers: list[Layer] = field(default_factory=list)

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    def variables(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            out.update(layer.variables())
        return out

    def folded_variables(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            out.update(layer.folded_variables())
        return out

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


def _same_out(size: int, stride: int) -> int:
    return -(-size // stride)  # SAME padding: ceil(size / stride)


class _Builder:
    """Appends layers, tracking the current tensor (name and H, W, C)."""

    def __init__(self, spec: ArchSpec, scope: str):
        self.net = Net(spec, scope)
        r = spec.resolution
        self.cur = "input"
        self.shape = (r, r, 3)
        for p in spec.preprocess:
            self.scale_shift(f"{scope}/preprocess/{p['name']}", p)

    def _add(self, layer: Layer) -> str:
        self.net.layers.append(layer)
        self.cur, self.shape = layer.name, layer.out_shape
        return layer.name

    def conv(self, name, cout, kernel=1, stride=1, activation="NONE", norm="batch_norm", src=None):
        src_name, (h, w, c) = (self.cur, self.shape) if src is None else src
        k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        out = (_same_out(h, stride), _same_out(w, stride), cout)
        return self._add(Layer(name, "conv", (src_name,), out, k, stride, c, cout, activation, norm))

    def depthwise(self, name, kernel=3, stride=1, activation="NONE", norm="batch_norm"):
        h, w, c = self.shape
        out = (_same_out(h, stride), _same_out(w, stride), c)
        return self._add(Layer(name, "depthwise", (self.cur,), out, (kernel, kernel), stride, c, c,
                               activation, norm))

    def global_pool(self, name):
        h, w, c = self.shape
        return self._add(Layer(name, "global_pool", (self.cur,), (1, 1, c), (h, w), 1, c, c))

    def add(self, name, other):
        return self._add(Layer(name, "add", (other, self.cur), self.shape, cin=self.shape[2],
                               cout=self.shape[2]))

    def mul(self, name, a, b, shape):
        return self._add(Layer(name, "mul", (a, b), shape, cin=shape[2], cout=shape[2]))

    def scale_shift(self, name, keras: dict):
        """x * scale + shift: a Rescaling or Normalization layer, or a head's BatchNormalization."""
        source = keras["kind"]
        c = self.shape[-1]
        per_channel = source != "rescaling" or any(isinstance(keras.get(k), (list, tuple))
                                                   for k in ("scale", "offset"))
        config = dict(keras, source=source, per_channel=per_channel)
        return self._add(Layer(name, "scale_shift", (self.cur,), self.shape, cin=c, cout=c, config=config))

    def head(self):
        """The Keras layers a user put after the base's features (spec.head), in order."""
        s = self.net.scope
        for h in self.net.spec.head:
            name, kind = f"{s}/head/{h['name']}", h["kind"]
            if kind == "global_pool":
                shape = (1, 1, self.shape[-1]) if h.get("keepdims") else (self.shape[-1],)
                c = self.shape[-1]
                self._add(Layer(name, "global_pool", (self.cur,), shape, tuple(self.shape[:2]), 1, c, c,
                                config={"keepdims": bool(h.get("keepdims"))}))
            elif kind in ("flatten", "reshape"):
                n = 1
                for d in self.shape:
                    n *= d
                shape = (n,) if kind == "flatten" else tuple(int(d) for d in h["shape"])
                self._add(Layer(name, "reshape", (self.cur,), shape, cin=n, cout=shape[-1]))
            elif kind == "dense":
                shape = tuple(self.shape[:-1]) + (int(h["units"]),)
                self._add(Layer(name, "dense", (self.cur,), shape, cin=self.shape[-1], cout=int(h["units"]),
                                activation=h.get("activation", "NONE"), norm="biases",
                                config={"use_bias": h.get("use_bias", True)}))
            elif kind == "batch_norm":
                self.scale_shift(name, h)
            elif kind == "activation":
                c = self.shape[-1]
                self._add(Layer(name, "activation", (self.cur,), self.shape, cin=c, cout=c,
                                activation=h["activation"]))
            else:
                raise AssertionError(kind)
        return self.net

    def logits(self):
        s = self.net.scope
        self.conv(f"{s}/Logits/Conv2d_1c_1x1", self.net.spec.num_classes, norm="biases")
        n = self.net.spec.num_classes
        self._add(Layer(f"{s}/Logits/output", "squeeze", (self.cur,), (1, 1, n), cin=n, cout=n))
        if self.net.spec.softmax:
            self._add(Layer(f"{s}/Predictions/Softmax", "softmax", (self.cur,), (1, 1, n), cin=n, cout=n))
        return self.net
