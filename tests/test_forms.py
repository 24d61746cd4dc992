"""refnet/forms.py is the one source of the form numbers, and each fixed-point form has one
definition per language that agree bit for bit: the NumPy oracle (refnet/fixedpoint.py), the
Cython scalar (kernels/fixedpoint.pxd, through _kernels_requantize) and the C vector body
(kernels/fast_body.h, through _kernels_fast) on every ISA copy this CPU runs."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_fast as kf
from refnet import _kernels_requantize as krq
from refnet import fixedpoint
from refnet.forms import FIXED_POINT_FORMS, Form, c_header, max_shift
from refnet.profile import PROFILES

ROOT = Path(__file__).resolve().parents[1]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ISAS = list(range(kf.isa_supported() + 1))


def test_generated_header_matches_the_enumeration():
    header = (ROOT / "kernels" / "forms.h").read_text()
    assert header == c_header(), "kernels/forms.h is stale: python refnet/forms.py > kernels/forms.h"


def test_forms_are_numbered_once_and_described():
    numbers = [int(f) for f in Form]
    assert numbers == list(range(len(numbers)))
    assert all(f.description for f in Form)
    assert {f for f in Form if f.is_fixed_point} == FIXED_POINT_FORMS
    assert [max_shift(f) for f in sorted(FIXED_POINT_FORMS)] == [31, 30, 31]


def test_every_profile_entry_is_a_form():
    for profile in PROFILES.values():
        assert isinstance(profile.default_rounding, Form)
        for key, form in profile.rounding_by_op.items():
            assert isinstance(form, Form), (profile.name, key)
            assert isinstance(profile.rounding(key if isinstance(key, str) else key[0]), Form)


def _three_definitions(x, m, s, form):
    """(oracle, Cython scalar, C vector per ISA) results for int32 arrays x, m, s."""
    x, m, s = (np.asarray(v, np.int32) for v in (x, m, s))
    oracle = fixedpoint.multiply_by_quantized_multiplier(x, m, s, form)
    scalar = krq.multiply_by_quantized_multiplier_array(x, m, s, int(form))
    before = kf.get_isa()
    try:
        vectors = {isa: kf.multiply_by_quantized_multiplier(x, m, s, int(form))
                   for isa in ISAS if kf.set_isa(isa) == isa}
    finally:
        kf.set_isa(before)
    return oracle, scalar, vectors


def _assert_agree(x, m, s, form):
    oracle, scalar, vectors = _three_definitions(x, m, s, form)
    assert oracle.dtype == scalar.dtype == np.int32
    bad = np.flatnonzero(oracle != scalar)
    assert not bad.size, f"{form.name}: Cython differs at x={x[bad[0]]} m={m[bad[0]]} s={s[bad[0]]}"
    for isa, v in vectors.items():
        assert v.dtype == np.int32
        bad = np.flatnonzero(oracle != v)
        assert not bad.size, (f"{form.name}, ISA {isa}: C vector differs at x={x[bad[0]]} m={m[bad[0]]} "
                              f"s={s[bad[0]]}: {v[bad[0]]} vs {oracle[bad[0]]}")
    assert len(vectors) == len(ISAS)


EXTREME_X = [INT32_MIN, INT32_MIN + 1, -(2**30), -3, -2, -1, 0, 1, 2, 3, 2**30, INT32_MAX - 1, INT32_MAX]
EXTREME_M = [INT32_MIN, -(2**30), -1, 0, 1, 2**30, 2**30 + 1, 1518500250, INT32_MAX - 1, INT32_MAX]


@pytest.mark.parametrize("form", sorted(FIXED_POINT_FORMS), ids=lambda f: Form(f).name)
def test_every_shift_on_extreme_inputs(form):
    form = Form(form)
    shifts = np.arange(-31, max_shift(form) + 1)
    grid = np.array(np.meshgrid(EXTREME_X, EXTREME_M, shifts, indexing="ij")).reshape(3, -1)
    _assert_agree(*grid, form)


@pytest.mark.parametrize("form", sorted(FIXED_POINT_FORMS), ids=lambda f: Form(f).name)
def test_ties_of_both_signs_at_every_right_shift(form):
    """m = 2**30 halves x exactly, so x = +-(2k + 1) * 2**r puts the final divide by 2**r on a tie;
    odd x puts the high multiply itself on a tie."""
    form = Form(form)
    xs, ms, ss = [], [], []
    for r in range(0, 31):
        for k in (0, 1, 5, 1000):
            v = (2 * k + 1) << r
            for sign in (1, -1):
                if -(2**31) <= sign * v <= INT32_MAX:
                    xs.append(sign * v)
                    ms.append(2**30)
                    ss.append(-r)
    for v in (1, 3, 5, 7, 2**20 + 1):
        for sign in (1, -1):
            xs.append(sign * v)
            ms.append(2**30)
            ss.append(0)
    _assert_agree(np.array(xs), np.array(ms), np.array(ss), form)
    oracle = fixedpoint.multiply_by_quantized_multiplier(np.int32(-3 * 2), np.int32(2**30), np.int32(-1), form)
    # -6 * 1/2 = -3, / 2 = -1.5: away from zero -> -2, toward +inf -> -1 (single rounding: -1 too)
    assert int(oracle) == {Form.ROUNDING_DOUBLE: -2, Form.ROUNDING_DOUBLE_TIES_UP: -1,
                           Form.ROUNDING_SINGLE: -1}[form]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(FIXED_POINT_FORMS)), st.data())
def test_random_inputs_agree(form, data):
    form = Form(form)
    n = data.draw(st.integers(1, 40))
    x = data.draw(st.lists(st.integers(INT32_MIN, INT32_MAX), min_size=n, max_size=n))
    m = data.draw(st.lists(st.integers(INT32_MIN, INT32_MAX), min_size=n, max_size=n))
    s = data.draw(st.lists(st.integers(-31, max_shift(form)), min_size=n, max_size=n))
    _assert_agree(np.array(x), np.array(m), np.array(s), form)


def test_forms_outside_the_kernels_are_refused_typed():
    with pytest.raises(ValueError, match="not a fixed-point form"):
        kf.multiply_by_quantized_multiplier([1], [1], [0], int(Form.ROUNDING_FP32))
    with pytest.raises(ValueError, match="not a fixed-point form"):
        fixedpoint.multiply_by_quantized_multiplier(1, 1, 0, Form.ADD_XNNPACK)
    with pytest.raises(ValueError, match="shift"):
        kf.multiply_by_quantized_multiplier([1], [1], [31], int(Form.ROUNDING_SINGLE))


def test_every_form_has_its_own_number():
    """Form is an IntEnum: a second form given a taken number would silently become an alias of the
    first (branches that each add forms collide this way), so every name must be a member of its own."""
    aliases = [name for name, member in Form.__members__.items() if member.name != name]
    assert not aliases, f"forms sharing a number with an earlier one: {aliases}"
