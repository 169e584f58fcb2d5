"""The quality scale users set (1 = smallest file, 100 = best) and how a file stores it."""

from __future__ import annotations

import math

from .errors import AecError

QUALITY_MIN = 1.0
QUALITY_MAX = 100.0
DEFAULT_QUALITY = 75.0
# A file stores the quality in hundredths: 100 .. 10000.
QUALITY_CENTI_MIN, QUALITY_CENTI_MAX = round(QUALITY_MIN * 100), round(QUALITY_MAX * 100)


def quality_to_centi(quality: float) -> int:
    """The quality as stored in the file (hundredths); the codec always uses this value."""
    if (
        not isinstance(quality, int | float)
        or math.isnan(quality)
        or not QUALITY_MIN <= quality <= QUALITY_MAX
    ):
        raise AecError(f"quality must be a number from 1 to 100, got {quality}")
    return round(quality * 100)
