"""Profiles: the arithmetic of one real runtime, written down as data.

The op code asks the profile which requantization rounding to use for an op kind; it never
forks on the runtime's name. "reference" is LiteRT's reference kernels (BUILTIN_REF).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Requantization forms (the values match the kernels' ROUNDING_* constants).
ROUNDING_DOUBLE = 0  # gemmlowp: rounding doubling high multiply, then rounding shift (ties away)
ROUNDING_SINGLE = 1  # one 64-bit product and one rounding shift (TFLITE_SINGLE_ROUNDING)
ROUNDING_DOUBLE_TIES_UP = 2  # high multiply as DOUBLE, final shift rounds ties toward +inf
ROUNDING_FLOAT64 = 3  # round(double(acc) * (double(s_x) * double(s_w) / double(s_y))), ties away

ROUNDING_NAMES = {
    ROUNDING_DOUBLE: "double rounding (gemmlowp, ties away from zero)",
    ROUNDING_SINGLE: "single rounding (64-bit product, ties up)",
    ROUNDING_DOUBLE_TIES_UP: "double rounding, final shift ties up",
    ROUNDING_FLOAT64: "float64 scale, round half away from zero",
}


@dataclass(frozen=True)
class Profile:
    name: str
    default_rounding: int = ROUNDING_DOUBLE
    rounding_by_op: dict = field(default_factory=dict)  # op kind -> rounding form

    def rounding(self, op_kind: str) -> int:
        return self.rounding_by_op.get(op_kind, self.default_rounding)


# LiteRT's reference FullyConnected (int8 and uint8) requantizes in double precision since 2025.
REFERENCE = Profile("reference", rounding_by_op={"FULLY_CONNECTED": ROUNDING_FLOAT64})
PROFILES = {"reference": REFERENCE}


def get_profile(name_or_profile) -> Profile:
    if isinstance(name_or_profile, Profile):
        return name_or_profile
    from .errors import InputError

    try:
        return PROFILES[name_or_profile]
    except KeyError:
        raise InputError(f"unknown profile {name_or_profile!r}; known: {sorted(PROFILES)}") from None
