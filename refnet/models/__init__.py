"""MobileNet builders: V1, V2, V3 Large/Small (+ minimalistic), EdgeTPU, with the seed's names."""
from __future__ import annotations

from .families import FAMILIES
from .spec import ArchSpec, Layer, Net, make_divisible
from .counting import count


def get_net(spec: ArchSpec | str, **kwargs) -> Net:
    if isinstance(spec, str):
        spec = ArchSpec(spec, **kwargs)
    if spec.arch not in FAMILIES:
        from ..errors import RefnetError
        raise RefnetError(f"unknown architecture '{spec.arch}' (known: {', '.join(FAMILIES)})")
    if spec.depth_multiplier <= 0:
        from ..errors import RefnetError
        raise RefnetError(f"depth multiplier must be > 0, got {spec.depth_multiplier}")
    return FAMILIES[spec.arch](spec)


def build(arch: str, depth_multiplier: float = 1.0, resolution: int = 224, num_classes: int = 1001,
          finegrain_classification_mode: bool | None = None, weights: dict | None = None, seed: int = 0,
          **spec_kwargs):
    """Float Graph of `arch` (one of FAMILIES). `weights`: folded tensors by name (as the weight
    store holds them); None builds seeded random weights (BN folded like an import)."""
    from .graph_builder import build_graph
    from .fold import fold, random_variables
    spec = ArchSpec(arch, depth_multiplier, resolution, num_classes, finegrain_classification_mode,
                    **spec_kwargs)
    net = get_net(spec)
    if weights is None:
        weights = fold(net, random_variables(net, seed))
    return build_graph(net, weights)


def _builder(arch):
    def fn(depth_multiplier=1.0, resolution=224, num_classes=1001,
           finegrain_classification_mode=None, weights=None, seed=0, **kw):
        return build(arch, depth_multiplier, resolution, num_classes,
                     finegrain_classification_mode, weights, seed, **kw)
    fn.__name__ = arch
    fn.__doc__ = f"Float Graph of {arch} (see refnet.models.build)."
    return fn


mobilenet_v1 = _builder("mobilenet_v1")
mobilenet_v2 = _builder("mobilenet_v2")
mobilenet_v3_large = _builder("mobilenet_v3_large")
mobilenet_v3_small = _builder("mobilenet_v3_small")
mobilenet_v3_large_minimalistic = _builder("mobilenet_v3_large_minimalistic")
mobilenet_v3_small_minimalistic = _builder("mobilenet_v3_small_minimalistic")
mobilenet_edgetpu = _builder("mobilenet_edgetpu")
