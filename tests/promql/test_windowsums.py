"""The in-place compensated sums give ``kahan_inc``'s bits for every finite input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soulwatch.promql import columnar

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

if columnar.available():
    from soulwatch.promql import windowsums


def _mixed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite floats of every exponent (subnormals too), both signs, and zeros of both signs."""
    mantissa = rng.random(n) + 0.5
    exponent = rng.integers(-1074, 990, n)
    out = np.ldexp(mantissa, exponent) * rng.choice([-1.0, 1.0], n)
    out[rng.random(n) < 0.1] = 0.0
    out[rng.random(n) < 0.05] = -0.0
    small = rng.random(n) < 0.2  # small integers: exact sums, zero errors
    out[small] = rng.integers(-5, 5, int(small.sum()))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), steps=st.integers(1, 30))
def test_twosum_error_is_neumaiers_compensation_bit_for_bit(seed: int, steps: int) -> None:
    rng = np.random.default_rng(seed)
    n = 4096
    first = _mixed(rng, n)
    total, c = first.copy(), np.zeros(n)
    sums = windowsums._Sums(first.copy())
    for _ in range(steps):
        inc = _mixed(rng, n)
        # Half the time, nearly the negation of the running sum (catastrophic cancellation).
        close = rng.random(n) < 0.3
        inc[close] = -total[close] * (1 + rng.integers(-3, 4, int(close.sum())) * 2.0**-52)
        every = rng.random() < 0.5  # the unmasked branch too
        active = np.ones(n, dtype=np.bool_) if every else rng.random(n) < 0.8
        t, grown = windowsums.kahan(inc, total, c)
        total = np.where(active, t, total)
        c = np.where(active, grown, c)
        sums.add(inc, windowsums._ALL if every else active)
    assert np.all(np.isfinite(total))
    assert sums.total.tobytes() == total.tobytes()
    assert sums.c.tobytes() == c.tobytes()
