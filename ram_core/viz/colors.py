"""One distinct colour per recurrent step, shared by every figure, PNG and GIF.

The palette is Sasha Trubetskoy's "20 distinct colours" (first ten, reordered so that neighbouring
steps contrast): saturated enough to read on a photo, different enough to tell seven steps apart.
The global step (step 0, the whole feature map) is drawn in a neutral grey.
"""

from __future__ import annotations

STEP_PALETTE: tuple[str, ...] = (
    "#e6194b",  # red
    "#3cb44b",  # green
    "#4363d8",  # blue
    "#f58231",  # orange
    "#911eb4",  # purple
    "#42d4f4",  # cyan
    "#f032e6",  # magenta
    "#bfef45",  # lime
    "#469990",  # teal
    "#9a6324",  # brown
)
GLOBAL_COLOR = "#9e9e9e"


def step_color(step: int) -> str:
    """Hex colour of a step: 0 is the global step, 1..K the attention steps (cycling past ten)."""
    if step <= 0:
        return GLOBAL_COLOR
    return STEP_PALETTE[(step - 1) % len(STEP_PALETTE)]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a #rrggbb colour, got {color!r}")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def rgba(color: str, alpha: float) -> str:
    """'#rrggbb' -> 'rgba(r, g, b, alpha)' for plotly fills."""
    r, g, b = hex_to_rgb(color)
    return f"rgba({r}, {g}, {b}, {alpha:g})"


def text_color_on(color: str) -> str:
    """Black or white, whichever reads better on `color` (WCAG relative luminance)."""
    def lin(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(v) for v in hex_to_rgb(color))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 0.35 else "#ffffff"
