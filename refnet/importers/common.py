"""Shared by the importers: architecture inference from variable shapes, and the hand-off to
the weight store (batch norm folded, provenance recorded). No TensorFlow here or anywhere in
refnet.importers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from ..models import ArchSpec, FAMILIES, get_net
from ..models.fold import fold
from ..weights_store import WeightStore, provenance_for

DM_CANDIDATES = sorted({0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4} |
                       {round(x, 2) for x in np.arange(0.05, 2.51, 0.05)})


def shapes_match(net, variables: dict) -> bool:
    for name, shape in net.variables().items():
        v = variables.get(name)
        if v is None or tuple(np.shape(v)) != tuple(shape):
            return False
    return True


def infer_spec(variables: dict[str, np.ndarray], source: str, families=None,
               resolution: int = 224, **spec_kwargs) -> ArchSpec:
    """The (arch, depth multiplier, fine-grain mode, classes) whose every slim variable has the
    shape found in `variables`. Resolution does not change any weight: it comes from the
    source's metadata or the caller."""
    names = set(variables)
    families = families or [a for a in FAMILIES
                            if any(n.startswith(get_net(ArchSpec(a, 1.0, 32)).scope + "/")
                                   for n in names)]
    head = spec_kwargs.get("head")
    if head is not None:  # a Keras head: the classes are its last Dense's units (0: features only)
        classes = next((int(h["units"]) for h in reversed(head) if h["kind"] == "dense"), 0)
    else:
        logits = [n for n in names if n.endswith("Logits/Conv2d_1c_1x1/biases")]
        if not logits:
            raise ModelFormatError(f"{source}: no logits layer (…/Logits/Conv2d_1c_1x1/biases) among "
                                   f"{len(names)} variables: not a MobileNet classifier checkpoint")
        classes = int(np.shape(variables[logits[0]])[0])
    for arch in families:
        for dm in DM_CANDIDATES:
            for fg in ((True, False) if dm < 1 else (False, True)):
                spec = ArchSpec(arch, dm, resolution, classes, fg, **spec_kwargs)
                net = get_net(spec)
                if shapes_match(net, variables) and len(net.variables()) == len(variables):
                    return spec
    raise ModelFormatError(f"{source}: the variables match no MobileNet definition "
                           f"(tried {', '.join(families) or 'no family: unknown scope'}; "
                           f"depth multipliers {DM_CANDIDATES[0]}..{DM_CANDIDATES[-1]})")


def check_against(spec: ArchSpec, variables: dict, source: str) -> None:
    net = get_net(spec)
    expected = net.variables()
    for name, shape in expected.items():
        if name not in variables:
            raise ModelFormatError(f"{source}: variable '{name}' is missing for {spec.arch} "
                                   f"dm={spec.depth_multiplier}")
        if tuple(np.shape(variables[name])) != tuple(shape):
            raise ModelFormatError(f"{source}: variable '{name}' has shape "
                                   f"{tuple(np.shape(variables[name]))}, expected {tuple(shape)}")


DEFAULT_RESOLUTION = 224


def resolution_note(resolution: int, given: bool) -> str:
    """Provenance note of a source that does not record its input resolution."""
    how = "as given (--resolution)" if given else f"assumed (refnet convert --resolution R for another)"
    return f"resolution not recorded in the file: {resolution}, {how}"


def make_store(spec: ArchSpec, variables: dict, source: Path, source_format: str, importer: str,
               importer_version: str, notes: str = "") -> WeightStore:
    check_against(spec, variables, str(source))
    net = get_net(spec)
    tensors = fold(net, variables, source=str(source))
    return WeightStore(spec, tensors, provenance_for(source, source_format, importer,
                                                     importer_version, notes))
