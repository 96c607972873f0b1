"""Argument checks shared by every public constructor: one wording everywhere."""

from __future__ import annotations

import math
from typing import Final

MAX_INT: Final = 2**62
"""The largest count any argument takes: far past any real quota, and exact as a float
ratio (a limit of 10**400 would overflow `period / limit`)."""


def positive_int(name: str, value: object) -> int:
    """Return `value` if it is an int from 1 to 2**62 (bool excluded), else raise naming
    `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value > MAX_INT:
        shown = repr(value) if value < 10**30 else f"an integer of {len(str(value))} digits"
        raise ValueError(f"{name} must be a positive integer up to 2**62, got {shown}")
    return value


def int_in_range(name: str, value: object, low: int, high: int) -> int:
    """Return `value` if it is an int in `[low, high]` (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def positive_float(name: str, value: object) -> float:
    """Return `value` as a float if it is a finite real number > 0."""
    return _seconds(name, value, "> 0")


def non_negative_float(name: str, value: object) -> float:
    """Return `value` as a float if it is a finite real number >= 0."""
    return _seconds(name, value, ">= 0")


def _seconds(name: str, value: object, bound: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    result = _as_float(value)
    if not (math.isfinite(result) and (result > 0 if bound == "> 0" else result >= 0)):
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return result


def _as_float(value: float) -> float:
    """`float(value)`, with an int too large for a float mapped to infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf
