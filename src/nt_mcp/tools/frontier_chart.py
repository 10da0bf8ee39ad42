"""The efficient-frontier chart: an 800x450 PNG drawn with Pillow (like `nt_mcp.tools.charts`).

x: annual volatility, y: annual return (both in percent); the frontier as a line with its points, each
asset alone as a labelled grey dot, equal weight as a square, the highest-Sharpe frontier point as a ring.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from nt_mcp.tools.charts import _nice_step

WIDTH_PX, HEIGHT_PX = 800, 450
Point = tuple[float, float]  # (volatility, return), fractions


def frontier_png(
    frontier: Sequence[Point],
    assets: Sequence[tuple[str, float, float]],
    equal_weight: Point | None,
    best: Point | None,
    title: str,
) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (WIDTH_PX, HEIGHT_PX), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = ImageFont.load_default(size=11), ImageFont.load_default(size=13)
    left, right, top, bottom = 70, WIDTH_PX - 20, 34, HEIGHT_PX - 46
    points = [*frontier, *((v, r) for _, v, r in assets), *(p for p in (equal_weight, best) if p is not None)]
    finite = [(v, r) for v, r in points if math.isfinite(v) and math.isfinite(r)]
    xs, ys = [v for v, _ in finite] or [0.0, 1.0], [r for _, r in finite] or [0.0, 1.0]
    x_step, y_step = _nice_step(max(xs) - min(0.0, min(xs))), _nice_step(max(ys) - min(ys))
    x_low, x_high = 0.0, math.ceil(max(xs) / x_step) * x_step or x_step
    y_low, y_high = math.floor(min(ys) / y_step) * y_step, math.ceil(max(ys) / y_step) * y_step
    y_high = y_high if y_high > y_low else y_low + y_step

    def at(v: float, r: float) -> tuple[float, float]:
        return (left + (v - x_low) / (x_high - x_low) * (right - left),
                bottom - (r - y_low) / (y_high - y_low) * (bottom - top))  # fmt: skip

    tick = y_low
    while tick <= y_high + y_step / 2:
        y = at(0, tick)[1]
        draw.line([(left, y), (right, y)], fill=(228, 228, 228))
        draw.text((left - 6, y), f"{tick * 100:.4g}%", fill="black", font=font, anchor="rm")
        tick += y_step
    tick = x_low
    while tick <= x_high + x_step / 2:
        x = at(tick, 0)[0]
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        draw.text((x, bottom + 8), f"{tick * 100:.4g}%", fill="black", font=font, anchor="ma")
        tick += x_step
    draw.rectangle([(left, top), (right, bottom)], outline="black")
    draw.text(((left + right) / 2, HEIGHT_PX - 16), "annual volatility", fill="black", font=font, anchor="ma")
    draw.text((8, top - 14), "annual return", fill="black", font=font, anchor="la")

    for name, v, r in assets:
        x, y = at(v, r)
        draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill=(150, 150, 150))
        draw.text((x + 5, y), name, fill=(90, 90, 90), font=font, anchor="lm")
    line = [at(v, r) for v, r in frontier]
    if len(line) > 1:
        draw.line(line, fill=(31, 119, 180), width=2)
    for x, y in line:
        draw.ellipse([(x - 2.5, y - 2.5), (x + 2.5, y + 2.5)], fill=(31, 119, 180))
    if equal_weight is not None:
        x, y = at(*equal_weight)
        draw.rectangle([(x - 4, y - 4), (x + 4, y + 4)], outline=(214, 39, 40), width=2)
    if best is not None:
        x, y = at(*best)
        draw.ellipse([(x - 7, y - 7), (x + 7, y + 7)], outline=(44, 160, 44), width=2)
    draw.text(((left + right) / 2, 8), title, fill="black", font=title_font, anchor="ma")
    legend = [((31, 119, 180), "efficient frontier"), ((44, 160, 44), "highest Sharpe"),
              ((214, 39, 40), "equal weight"), ((150, 150, 150), "single assets")]  # fmt: skip
    for i, (colour, label) in enumerate(legend):
        y = top + 12 + 16 * i
        draw.line([(right - 150, y), (right - 130, y)], fill=colour, width=3)
        draw.text((right - 124, y), label, fill="black", font=font, anchor="lm")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
