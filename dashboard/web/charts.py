"""Small server-side SVG charts (no JavaScript, nothing fetched at run time)."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d")


def stacked_bars(categories: list[str], series: dict[str, list[float]], height: int = 220) -> Markup:
    """Vertical bars per category (e.g. day), stacked by series (e.g. rule), with a legend."""
    width, left, bottom, top = max(320, 28 * len(categories) + 60), 40, 40, 10
    totals = [sum(vals[i] for vals in series.values()) for i in range(len(categories))]
    peak = max(totals, default=0) or 1
    plot_h = height - bottom - top
    bar_w = (width - left - 10) / max(len(categories), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 20 * len(series)}" role="img">']
    parts.append(f'<text x="4" y="{top + 10}" class="axis">{int(peak)}</text>')
    parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>'
    )
    for i, cat in enumerate(categories):
        y = height - bottom
        for s, (name, vals) in enumerate(series.items()):
            h = vals[i] / peak * plot_h
            if h > 0:
                y -= h
                parts.append(
                    f'<rect x="{left + i * bar_w + 2:.1f}" y="{y:.1f}" '
                    f'width="{bar_w - 4:.1f}" height="{h:.1f}" '
                    f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(cat)} {escape(name)}: '
                    f"{vals[i]:g}</title></rect>"
                )
        if len(categories) <= 16 or i % max(1, len(categories) // 8) == 0:
            parts.append(
                f'<text x="{left + i * bar_w + bar_w / 2:.1f}" y="{height - bottom + 14}" '
                f'class="axis" text-anchor="middle">{escape(cat[-5:])}</text>'
            )
    for s, name in enumerate(series):
        y = height + 20 * s
        parts.append(
            f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>'
            f'<text x="{left + 16}" y="{y}" class="axis">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def hbars(items: list[tuple[str, float]], fmt: str = "{:g}", scale_max: float | None = None) -> Markup:
    """Horizontal bars with labels, e.g. alerts per restaurant or false-positive rate per rule."""
    row_h, label_w, width = 22, 180, 560
    peak = scale_max or max((v for _, v in items), default=0) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {max(row_h * len(items), row_h)}" role="img">']
    if not items:
        parts.append('<text x="4" y="15" class="axis">no data yet</text>')
    for i, (label, value) in enumerate(items):
        y = i * row_h
        w = value / peak * (width - label_w - 70)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" class="axis" text-anchor="end">{escape(label[:28])}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{PALETTE[0]}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="axis">{escape(fmt.format(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
