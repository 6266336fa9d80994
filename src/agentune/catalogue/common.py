"""Helpers the catalogue's tools share: stable hashes for deterministic "live" data, result rounding, rates."""

from __future__ import annotations

import hashlib
from typing import Any


def stable_int(*parts: Any) -> int:
    """A stable integer from the arguments (same value on every machine and Python run)."""
    text = "\x1f".join(str(p).strip().lower() for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def round_result(x: float) -> int | float:
    """Round a result for display: integers stay integers, others keep at most 6 decimals."""
    x = round(float(x), 6)
    return int(x) if x.is_integer() and abs(x) < 1e15 else x


RATES = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.2,
    "CNY": 7.24,
    "INR": 83.3,
    "CAD": 1.36,
    "AUD": 1.52,
    "CHF": 0.9,
    "KRW": 1345.0,
    "BRL": 5.05,
    "MXN": 16.9,
}
