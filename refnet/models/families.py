"""The seed's MobileNet definitions (TF-slim, tensorflow/models research/slim/nets), as layer lists.

Each function takes an ArchSpec and returns a Net (refnet.models.spec). With spec.head set (a
Keras base with a user's head), the layers after the last feature conv are that head's. The definitions follow
the seed's tables: mobilenet_v1.py (MOBILENETV1_CONV_DEFS), mobilenet/mobilenet_v2.py (V2_DEF),
mobilenet/mobilenet_v3.py (V3_LARGE, V3_SMALL, the minimalistic variants, V3_EDGETPU) and the
block semantics of mobilenet/conv_blocks.py (expanded_conv, squeeze_excite) and
mobilenet/mobilenet.py (depth multiplier, global pool, logits).
"""
from __future__ import annotations

from .spec import ArchSpec, Net, _Builder, make_divisible

# ---------------------------------------------------------------------------------------------
# MobileNet V1: depth = max(int(d * dm), 8); depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6

_V1_SEPARABLE = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + \
    [(2, 1024), (1, 1024)]


def mobilenet_v1(spec: ArchSpec) -> Net:
    b = _Builder(spec, "MobilenetV1")
    s = b.net.scope

    def depth(d):
        return max(int(d * spec.depth_multiplier), 8)

    b.conv(f"{s}/Conv2d_0", depth(32), 3, 2, "RELU6")
    for i, (stride, d) in enumerate(_V1_SEPARABLE, start=1):
        b.depthwise(f"{s}/Conv2d_{i}_depthwise", 3, stride, "RELU6")
        b.conv(f"{s}/Conv2d_{i}_pointwise", depth(d), 1, 1, "RELU6")
    if spec.head is not None:
        return b.head()
    b.global_pool(f"{s}/Logits/AvgPool_1a")
    return b.logits()


# ---------------------------------------------------------------------------------------------
# Inverted residual blocks (conv_blocks.expanded_conv)

def _expanded_conv(b: _Builder, name: str, num_outputs: int, inner: int, kernel: int, stride: int,
                   act: str, se: bool = False, fused: bool = False, residual: bool = True,
                   se_gate: str = "HARD_SIGMOID") -> None:
    """expand (1x1, or kxk with stride when `fused`) -> depthwise kxk -> [squeeze-excite] ->
    project 1x1 (no activation) -> residual add when stride 1 and depths match. The expansion
    exists only when the inner size exceeds the input depth, as in the seed."""
    src, src_shape = b.cur, b.shape
    if inner > b.shape[2]:
        if fused:
            b.conv(f"{name}/expand", inner, kernel, stride, act)
        else:
            b.conv(f"{name}/expand", inner, 1, 1, act)
    if not fused:
        b.depthwise(f"{name}/depthwise", kernel, stride, act)
    if se:
        x, x_shape = b.cur, b.shape
        squeeze = make_divisible(x_shape[2] / 4, 8)
        b.global_pool(f"{name}/squeeze_excite/AvgPool")
        b.conv(f"{name}/squeeze_excite/Conv", squeeze, 1, 1, "RELU", norm="biases")
        b.conv(f"{name}/squeeze_excite/Conv_1", x_shape[2], 1, 1, se_gate, norm="biases")
        b.mul(f"{name}/squeeze_excite/mul", x, b.cur, x_shape)
    b.conv(f"{name}/project", num_outputs, 1, 1, "NONE")
    if residual and stride == 1 and num_outputs == src_shape[2]:
        b.add(f"{name}/add", src)


def _block_name(scope: str, i: int) -> str:
    return f"{scope}/expanded_conv" if i == 0 else f"{scope}/expanded_conv_{i}"


# ---------------------------------------------------------------------------------------------
# MobileNet V2 (V2_DEF): ReLU6 everywhere, expansion 6 (first block 1), last conv 1280

_V2_BLOCKS = [(1, 16, 1)] + [(6, 24, 2), (6, 24, 1)] + [(6, 32, 2)] + [(6, 32, 1)] * 2 + \
    [(6, 64, 2)] + [(6, 64, 1)] * 3 + [(6, 96, 1)] * 3 + [(6, 160, 2)] + [(6, 160, 1)] * 2 + \
    [(6, 320, 1)]


def mobilenet_v2(spec: ArchSpec) -> Net:
    b = _Builder(spec, "MobilenetV2")
    s, dm = b.net.scope, spec.depth_multiplier

    def depth(d):
        return make_divisible(d * dm, 8, 8)

    b.conv(f"{s}/Conv", depth(32), 3, 2, "RELU6")
    for i, (ef, n, stride) in enumerate(_V2_BLOCKS):
        # expand_input_by_factor(6) rounds to 8; the first block's factor 1 rounds to 1
        inner = make_divisible(b.shape[2] * ef, 8) if ef != 1 else b.shape[2]
        _expanded_conv(b, _block_name(s, i), depth(n), inner, 3, stride, "RELU6")
    last = 1280
    if spec.finegrain_classification_mode and dm < 1:
        last = 1280 / dm  # the seed divides, the multiplier multiplies back: 1280 kept
    b.conv(f"{s}/Conv_1", depth(last), 1, 1, "RELU6")
    if spec.head is not None:
        return b.head()
    b.global_pool(f"{s}/Logits/AvgPool")
    return b.logits()


# ---------------------------------------------------------------------------------------------
# MobileNet V3 (mbv3_op: ef, n, k, s, act, se) and the EdgeTPU variant (mbv3_fused)

R, H = "RELU", "HARD_SWISH"
_V3_LARGE = [(1, 16, 3, 1, R, False), (4, 24, 3, 2, R, False), (3, 24, 3, 1, R, False),
             (3, 40, 5, 2, R, True), (3, 40, 5, 1, R, True), (3, 40, 5, 1, R, True),
             (6, 80, 3, 2, H, False), (2.5, 80, 3, 1, H, False), (184 / 80, 80, 3, 1, H, False),
             (184 / 80, 80, 3, 1, H, False), (6, 112, 3, 1, H, True), (6, 112, 3, 1, H, True),
             (6, 160, 5, 2, H, True), (6, 160, 5, 1, H, True), (6, 160, 5, 1, H, True)]
_V3_SMALL = [(1, 16, 3, 2, R, True), (72 / 16, 24, 3, 2, R, False), (88 / 24, 24, 3, 1, R, False),
             (4, 40, 5, 2, H, True), (6, 40, 5, 1, H, True), (6, 40, 5, 1, H, True),
             (3, 48, 5, 1, H, True), (3, 48, 5, 1, H, True), (6, 96, 5, 2, H, True),
             (6, 96, 5, 1, H, True), (6, 96, 5, 1, H, True)]


def _minimalistic(blocks):
    """No squeeze-excite, no hard-swish, no 5x5 depthwise (the seed's *_MINIMALISTIC defs)."""
    return [(ef, n, 3, s, R, False) for ef, n, k, s, act, se in blocks]


def _v3(spec: ArchSpec, blocks, conv_1: int, conv_2: int, minimalistic: bool) -> Net:
    b = _Builder(spec, "MobilenetV3")
    s, dm = b.net.scope, spec.depth_multiplier
    act = R if minimalistic else H

    def depth(d):
        return make_divisible(d * dm, 8, 8)

    b.conv(f"{s}/Conv", depth(16), 3, 2, act)
    for i, (ef, n, k, stride, a, se) in enumerate(blocks):
        inner = make_divisible(b.shape[2] * ef, 8)
        _expanded_conv(b, _block_name(s, i), depth(n), inner, k, stride, a, se=se)
    b.conv(f"{s}/Conv_1", depth(conv_1), 1, 1, act)
    if spec.head is not None:  # a Keras base without its top: the user's head replaces Conv_2 too
        return b.head()
    b.global_pool(f"{s}/AvgPool")  # reduce_to_1x1
    # finegrain mode keeps the last layer at its full size (multiplier_func = identity)
    last = conv_2 if spec.finegrain_classification_mode else depth(conv_2)
    b.conv(f"{s}/Conv_2", last, 1, 1, act, norm="biases")
    return b.logits()


def mobilenet_v3_large(spec: ArchSpec) -> Net:
    return _v3(spec, _V3_LARGE, 960, 1280, False)


def mobilenet_v3_small(spec: ArchSpec) -> Net:
    return _v3(spec, _V3_SMALL, 576, 1024, False)


def mobilenet_v3_large_minimalistic(spec: ArchSpec) -> Net:
    return _v3(spec, _minimalistic(_V3_LARGE), 960, 1280, True)


def mobilenet_v3_small_minimalistic(spec: ArchSpec) -> Net:
    return _v3(spec, _minimalistic(_V3_SMALL), 576, 1024, True)


# (fused, k, s, ef, n, residual)
_EDGETPU = [(True, 3, 1, 1, 16, True), (True, 3, 2, 8, 32, True)] + [(True, 3, 1, 4, 32, True)] * 3 + \
    [(True, 3, 2, 8, 48, True)] + [(True, 3, 1, 4, 48, True)] * 3 + \
    [(False, 3, 2, 8, 96, True)] + [(False, 3, 1, 4, 96, True)] * 3 + [(False, 3, 1, 8, 96, False)] + \
    [(False, 3, 1, 4, 96, True)] * 3 + [(False, 5, 2, 8, 160, True)] + [(False, 5, 1, 4, 160, True)] * 3 + \
    [(False, 3, 1, 8, 192, True)]


def mobilenet_edgetpu(spec: ArchSpec) -> Net:
    b = _Builder(spec, "MobilenetEdgeTPU")
    s, dm = b.net.scope, spec.depth_multiplier

    def depth(d):
        return make_divisible(d * dm, 8, 8)

    b.conv(f"{s}/Conv", depth(32), 3, 2, R)
    for i, (fused, k, stride, ef, n, residual) in enumerate(_EDGETPU):
        inner = make_divisible(b.shape[2] * ef, 8)
        _expanded_conv(b, _block_name(s, i), depth(n), inner, k, stride, R, fused=fused,
                       residual=residual)
    last = 1280 if spec.finegrain_classification_mode else depth(1280)
    b.conv(f"{s}/Conv_1", last, 1, 1, R)
    if spec.head is not None:
        return b.head()
    b.global_pool(f"{s}/Logits/AvgPool")
    return b.logits()


FAMILIES = {
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    "mobilenet_v3_large_minimalistic": mobilenet_v3_large_minimalistic,
    "mobilenet_v3_small_minimalistic": mobilenet_v3_small_minimalistic,
    "mobilenet_edgetpu": mobilenet_edgetpu,
}
