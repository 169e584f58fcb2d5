"""Durations and intervals as users type them: `7m30s`, `90s`, `1.5h`, `500` (steps).

No torch here: the CLI parses these before it imports anything heavy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([hms])")


def parse_duration(text: str) -> float:
    """Seconds in `text`: one or more number+unit parts (`7m30s`, `1.5h`, `90s`), or a plain
    number of seconds. Raises ValueError with the reason."""
    s = text.strip().lower().replace(" ", "")
    if not s:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+(\.\d*)?|\.\d+", s):
        seconds = float(s)
    else:
        parts = _PART.findall(s)
        if not parts or "".join(n + u for n, u in parts) != s:
            raise ValueError(f"{text!r} is not a duration (examples: 90s, 7m30s, 1.5h)")
        units = [u for _, u in parts]
        if len(set(units)) != len(units) or units != sorted(units, key="hms".index):
            raise ValueError(f"{text!r}: give each unit once, hours before minutes before seconds")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    return seconds


def format_duration(seconds: float) -> str:
    """`7m30s`, `2m`, `45s`, `1h5m`: the shortest text that parse_duration reads back (to the
    second; below 10 s to a tenth)."""
    if seconds < 10:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return text or "0s"


@dataclass(frozen=True)
class Interval:
    """Every `steps` optimizer steps, or every `seconds` of time; 0 in both: never."""

    steps: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.seconds > 0:
            return format_duration(self.seconds)
        return str(self.steps)


def parse_interval(text: str) -> Interval:
    """A plain integer is a number of steps (`500`); a number with a unit is a time (`2m`)."""
    s = text.strip()
    if re.fullmatch(r"\d+", s):
        return Interval(steps=int(s))
    if not re.search(r"[hms]\s*$", s.lower()):  # a plain non-integer such as 2.5: ambiguous
        raise ValueError(f"{text!r}: give whole steps (500) or a time with its unit (90s, 2m)")
    return Interval(seconds=parse_duration(s))
