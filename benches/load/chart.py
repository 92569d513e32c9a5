"""SVG chart of a load-harness run: one horizontal bar per case, the median req/s, a whisker
from the slowest to the fastest round, and the ratio to nginx (b). Plain SVG text, so the
harness needs no plotting library; benches/load/harness.py writes it next to the Markdown table.
"""
import statistics
from xml.sax.saxutils import escape

ROW, LABEL_WIDTH, BAR_WIDTH, TOP = 28, 330, 420, 40


def render_svg(cases, results, title):
    """cases: [(key, label, ...)]; results: {key: [{"rps": float, ...}, ...]} with >= 1 round each."""
    rows = []
    for key, label, *_ in cases:
        values = [r["rps"] for r in results[key]]
        if values:
            rows.append((key, label, statistics.median(values), min(values), max(values)))
    scale = max((fastest for *_, fastest in rows), default=1.0) or 1.0
    nginx = next((median for key, _, median, *_ in rows if key == "b"), None)
    width, height = LABEL_WIDTH + BAR_WIDTH + 230, TOP + ROW * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>']
    for index, (key, label, median, slowest, fastest) in enumerate(rows):
        y = TOP + index * ROW
        x0 = LABEL_WIDTH
        bar = BAR_WIDTH * median / scale
        colour = "#888888" if key in ("a", "b", "j") else "#3b6ea5"
        ratio = f"{median / nginx:.2f}x nginx" if nginx else ""
        out += [
            f'<text x="10" y="{y + 15}">({key}) {escape(label[:52])}</text>',
            f'<rect x="{x0}" y="{y + 4}" width="{bar:.1f}" height="16" fill="{colour}"/>',
            f'<line x1="{x0 + BAR_WIDTH * slowest / scale:.1f}" x2="{x0 + BAR_WIDTH * fastest / scale:.1f}" '
            f'y1="{y + 12}" y2="{y + 12}" stroke="black"/>',
            f'<text x="{x0 + BAR_WIDTH * fastest / scale + 6:.1f}" y="{y + 16}">{median:.0f} req/s {ratio}</text>',
        ]
    out.append(f'<text x="10" y="{height - 8}" fill="#555555">bars: median of rounds; '
               f'whiskers: slowest to fastest round; grey: references</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
