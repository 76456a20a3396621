"""Numbers as people write them: sizes, counts and durations. One place, so every screen and command agrees."""

from __future__ import annotations

GIB = 2**30


def gib(n: int | None, digits: int = 1) -> str:
    """Memory in binary gibibytes, e.g. ``7.8 GiB`` ("?" when unknown)."""
    return "?" if n is None else f"{n / GIB:.{digits}f} GiB"


def human_bytes(n: int) -> str:
    """A download or file size in decimal units, e.g. ``93 MB``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def human_count(n: int) -> str:
    """A parameter count, e.g. ``135M`` or ``8.03B``."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def plain_number(value: float) -> str:
    """A number as people write it: 3, 1,024, 0.05, 0.0002, 1e-5 (never 3.000000)."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    text = f"{value:.6g}" if abs(value) >= 1e-4 else f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text
