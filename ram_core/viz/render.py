"""Still pictures of a trace with Pillow: the annotated PNG, the animated GIF of the steps, and the
region each step sampled.

Everything here draws from a trace's box fractions (`box_norm`), so it works on any copy of the
image, e.g. one downscaled for display, while the trace keeps the original image's pixel boxes.
"""

from __future__ import annotations

import functools
import importlib.util
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..trace import AttentionTrace, StepTrace
from .colors import hex_to_rgb, step_color, text_color_on

DISPLAY_MAX_SIDE = 1600  # the page and the PNG never need more pixels than this


@functools.lru_cache(maxsize=16)
def font(size: int, bold: bool = True) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's bundled fonts (same look everywhere), else Pillow's default."""
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.submodule_search_locations:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        path = Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf" / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def display_copy(img: Image.Image, max_side: int = DISPLAY_MAX_SIDE) -> Image.Image:
    """The image downscaled (never upscaled) so that its longer side is at most max_side."""
    if max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)


def box_pixels(box_norm: list[float], size: tuple[int, int], clip: bool = True) -> tuple[float, float, float, float]:
    """Box fractions -> pixels of an image of `size` (width, height), clipped to it unless clip=False."""
    w, h = size
    x0, y0, x1, y1 = box_norm
    if clip:
        x0, x1 = (min(max(v, 0.0), 1.0) for v in (x0, x1))
        y0, y1 = (min(max(v, 0.0), 1.0) for v in (y0, y1))
    return x0 * w, y0 * h, x1 * w, y1 * h


def step_caption(step: StepTrace, n: int = 1) -> str:
    """'2 · person 0.91' (the step number and its top n labels)."""
    tops = ", ".join(f"{c} {p:.2f}" for c, p in step.top(n))
    return f"{step.step} · {tops}"


def global_caption(trace: AttentionTrace, n: int = 1) -> str:
    tops = ", ".join(f"{c} {p:.2f}" for c, p in sorted(trace.global_scores.items(), key=lambda kv: -kv[1])[:n])
    return f"0 · global · {tops}"


def _tag_box(xy: tuple[float, float], text: str, fnt, bounds, placed: list | None = None) -> tuple:
    """Where a tag with `text` goes: its top-left near xy, inside the image, and moved down past the
    tags already `placed` (boxes sharing a corner would otherwise hide each other's tags)."""
    l, t, r, b = fnt.getbbox(text)
    pad = max(2, fnt.size // 5)
    tw, th = r - l + 2 * pad, b - t + 2 * pad
    x = min(max(xy[0], 0), max(0, bounds[0] - tw))
    y = min(max(xy[1], 0), max(0, bounds[1] - th))
    for _ in range(50 if placed else 0):
        if not any(p[0] < x + tw and x < p[2] and p[1] < y + th and y < p[3] for p in placed):
            break
        y += th
    if placed is not None:
        placed.append((x, y, x + tw, y + th))
    return x, y, x + tw, y + th


def _draw_tag(draw: ImageDraw.ImageDraw, box: tuple, text: str, color: str, fnt) -> None:
    x0, y0, x1, y1 = box
    l, t, _, _ = fnt.getbbox(text)
    pad = max(2, fnt.size // 5)
    draw.rectangle([x0, y0, x1, y1], fill=hex_to_rgb(color))
    draw.text((x0 + pad - l, y0 + pad - t), text, fill=text_color_on(color), font=fnt)


def draw_steps(img: Image.Image, trace: AttentionTrace, upto: int | None = None, highlight: int | None = None,
               show_global: bool = False, top: int = 1) -> Image.Image:
    """A copy of img with the boxes of steps 1..upto (default: all) drawn in their colours, the step
    number and top label on each.  `highlight` draws that step thicker and earlier ones thinner."""
    out = img.convert("RGB").copy()
    w, h = out.size
    draw = ImageDraw.Draw(out, "RGBA")
    side = max(w, h)
    width = max(2, round(side / 250))
    fnt = font(max(11, round(side / 45)))
    if show_global:
        color = step_color(0)
        draw.rectangle([0, 0, w - 1, h - 1], outline=hex_to_rgb(color), width=width * 2)
        text = global_caption(trace, top)
        _draw_tag(draw, _tag_box((width * 2, width * 2), text, fnt, (w, h)), text, color, fnt)
    steps = trace.steps if upto is None else trace.steps[:upto]
    # Tags are placed in step order (the same places in every GIF frame), then everything is drawn
    # with the highlighted step last so that its box and tag sit on top.
    placed: list = []
    tags = {s.step: _tag_box(box_pixels(s.box_norm, (w, h))[:2], step_caption(s, top), fnt, (w, h), placed)
            for s in trace.steps}
    order = sorted(steps, key=lambda s: s.step == highlight)
    for s in order:
        color = step_color(s.step)
        x0, y0, x1, y1 = box_pixels(s.box_norm, (w, h))
        faded = highlight is not None and s.step != highlight
        lw = max(1, width // 2) if faded else (width * 2 if s.step == highlight else width)
        rgb = hex_to_rgb(color)
        if s.step == highlight:
            draw.rectangle([x0, y0, x1, y1], fill=rgb + (40,))
        draw.rectangle([x0, y0, x1, y1], outline=rgb + ((150,) if faded else (255,)), width=lw)
        _draw_tag(draw, tags[s.step], step_caption(s, top), color, fnt)
    return out


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def annotated_png(img: Image.Image, trace: AttentionTrace, max_side: int = DISPLAY_MAX_SIDE) -> bytes:
    """PNG of the image with every step's box, number and top label."""
    return png_bytes(draw_steps(display_copy(img, max_side), trace))


def steps_gif(img: Image.Image, trace: AttentionTrace, max_side: int = 512, ms_per_step: int = 900) -> bytes:
    """An animated GIF that walks through the steps: the global step (whole image), then steps 1..K
    one at a time (the current one highlighted), then all boxes together; it loops."""
    base = display_copy(img, max_side).convert("RGB")
    frames = [draw_steps(base, trace, upto=0, show_global=True)]
    frames += [draw_steps(base, trace, upto=k, highlight=k) for k in range(1, len(trace.steps) + 1)]
    frames.append(draw_steps(base, trace))
    durations = [ms_per_step] * (len(frames) - 1) + [ms_per_step * 3]
    # One palette for all frames, taken from the frame with every box: unchanged pixels stay identical
    # from frame to frame, so Pillow stores only each frame's changed rectangle.
    palette = frames[-1].quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    paletted = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    paletted[0].save(buf, "GIF", save_all=True, append_images=paletted[1:], duration=durations, loop=0,
                     disposal=1, optimize=False)
    return buf.getvalue()


def region_crop(img: Image.Image, step: StepTrace, size: int = 192, border: int = 4) -> Image.Image:
    """The part of the image a step sampled, fitted into size x size with a border in the step's colour.

    Like the sampler, the crop is not clipped: where the box reaches outside the image it is black
    (the sampler reads zeros there), and a negative scale mirrors the region.
    """
    x0, y0, x1, y1 = box_pixels(step.box_norm, img.size, clip=False)
    if x1 - x0 < 1:
        x1 = x0 + 1
    if y1 - y0 < 1:
        y1 = y0 + 1
    crop = img.convert("RGB").crop((round(x0), round(y0), round(x1), round(y1)))
    if step.transform.get("s_x", 1.0) < 0:
        crop = ImageOps.mirror(crop)
    if step.transform.get("s_y", 1.0) < 0:
        crop = ImageOps.flip(crop)
    inner = size - 2 * border
    crop = ImageOps.contain(crop, (inner, inner), Image.LANCZOS)  # small regions are enlarged too
    framed = Image.new("RGB", (crop.width + 2 * border, crop.height + 2 * border), hex_to_rgb(step_color(step.step)))
    framed.paste(crop, (border, border))
    return framed


def region_crops(img: Image.Image, trace: AttentionTrace, size: int = 192) -> list[Image.Image]:
    """region_crop for each step 1..K, in order."""
    return [region_crop(img, s, size) for s in trace.steps]
