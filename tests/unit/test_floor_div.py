"""`kernel._floor_div` (the entry sizing's floor division without ``fmod`` in the common case) is
Python's float ``//`` bit for bit: on quotients an ulp or a few either side of an integer (where its
fast path must step aside), on the sizing's own operands, and on zeros, signs, huge and tiny values,
infinities and NaN; compiled and as the Python twin."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from nt_mcp.domain.backtest.kernel import _floor_div
from nt_mcp.domain.jit import python_twin


@njit(cache=False)
def _all(a, b, out):  # type: ignore[no-untyped-def]
    for i in range(a.shape[0]):
        out[i] = _floor_div(a[i], b[i])


def _bits(x: Any) -> Any:
    return np.asarray(x, dtype=np.float64).view(np.int64)


def _check(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> None:
    keep = b != 0.0  # Python raises on a zero divisor
    a, b = a[keep], b[keep]
    got = np.empty_like(a)
    _all(a, b, got)
    want = np.array([x // y for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    bad = np.flatnonzero(_bits(got) != _bits(want))
    assert bad.size == 0, (a[bad[:5]], b[bad[:5]], got[bad[:5]], want[bad[:5]])


def test_near_integer_quotients() -> None:
    rng = np.random.default_rng(0)
    k = rng.integers(0, 2**40, 20_000).astype(np.float64)
    k[:50] = np.arange(50)
    b = rng.random(20_000) * 100 + 0.01
    exact = k * b
    for steps in range(-3, 4):
        a = exact.copy()
        for _ in range(abs(steps)):
            a = np.nextafter(a, math.copysign(math.inf, steps))
        _check(a, b)


def test_sizing_operands_and_random_scales() -> None:
    rng = np.random.default_rng(1)
    f = 1.0 - 2.0**-52
    cash = rng.random(20_000) * 1e7
    px = rng.random(20_000) * 1_000 + 0.01
    _check(cash * f, px + (0.0 + f * px * 0.0) / f)
    _check(cash * f, px + (2.0 + f * px * 0.002) / f)
    for sa, sb in ((1e6, 100.0), (1.0, 1.0), (1e15, 1e-3), (1e-300, 1e-10), (3.0, 1e-14)):
        _check(rng.random(5_000) * sa, rng.random(5_000) * sb + 1e-300)
    _check(rng.normal(0, 1e6, 5_000), rng.normal(0, 100, 5_000))


def test_special_values() -> None:
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, 3.0, 0.1, 0.3, 1e-320, 2.0**49, 2.0**49 - 1, 2.0**53, 2.0**60]
    vals += [math.inf, -math.inf, math.nan, 999_999.999_999_999_9]
    a, b = (x.ravel() for x in np.meshgrid(np.array(vals), np.array(vals)))
    _check(a, b)
    twin = python_twin(_floor_div)
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        if y != 0.0:
            assert _bits(twin(x, y)) == _bits(x // y)
