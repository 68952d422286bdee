"""The report's three forms from one list of sections (`tasks.document`): one self-contained HTML
file (its CSS inline, charts drawn as inline SVG: it makes no network request), Markdown, or
plain text. Every form shows the same, already formatted numbers."""

from __future__ import annotations

import html

from tasks.document import Chart, Heatmap, LineChart, Section, Table

FORMATS = ("html", "md", "text")


class ReportError(ValueError):
    """No run to report on, or a form there is none of; the message says which there are."""


def render(sections: list[Section], fmt: str, title: str) -> str:
    if fmt == "html":
        return _html(sections, title)
    if fmt == "md":
        return _markdown(sections, title)
    if fmt == "text":
        return _text(sections, title)
    raise ReportError(f"unknown report format {fmt!r} (use {', '.join(FORMATS)})")


def _markdown(sections: list[Section], title: str) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Heatmap):
                continue  # a picture: the HTML report has it
            if isinstance(block, LineChart):
                out += [f"### {block.title}", ""]
                block = block.table()
            if isinstance(block, str):
                out += [block, ""]
            else:
                table = block if isinstance(block, Table) else Table([block.title, "count"], [[b[0], b[1]] for b in block.bars])
                cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append("| " + " | ".join(cell(h) for h in table.headers) + " |")
                out.append("|" + " --- |" * len(table.headers))
                out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
                out.append("")
    return "\n".join(out)


def _text(sections: list[Section], title: str) -> str:
    out = [title, "=" * len(title), ""]
    for section in sections:
        out += [section.title, "-" * len(section.title)]
        for block in section.blocks:
            if isinstance(block, Heatmap):
                continue  # a picture: the HTML report has it
            if isinstance(block, LineChart):
                out.append(block.title + ":")
                block = block.table()
            if isinstance(block, str):
                out.append(block)
            elif isinstance(block, Chart):
                out.append(block.title + ":")
                largest = max((b[2] for b in block.bars), default=0) or 1
                width = max((len(b[0]) for b in block.bars), default=0)
                out += [f"  {label:>{width}} {'#' * round(30 * size / largest):<30} {value}" for label, value, size in block.bars]
            else:
                widths = [max(len(str(v)) for v in column) for column in zip(block.headers, *block.rows)]
                for row in [block.headers, *block.rows]:
                    out.append("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
            out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:70rem;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
nav a{margin-right:1rem}table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.BLOCK,td.FAIL{color:#b42318;font-weight:600}td.warn{color:#9a6700}td.pass{color:#1a7f37}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}svg text{font-size:12px;fill:#1f2328}
"""


def _svg_chart(chart: Chart) -> str:
    row, label_width, bar_width = 20, 120, 420
    largest = max((b[2] for b in chart.bars), default=0) or 1
    height = row * len(chart.bars) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 140}" height="{height}" role="img">']
    for i, (label, value, size) in enumerate(chart.bars):
        y = i * row + 2
        width = max(1.0, bar_width * size / largest) if size else 0
        parts.append(f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end">{html.escape(label)}</text>'
                     f'<rect x="{label_width}" y="{y + 2}" width="{width:.1f}" height="{row - 5}" fill="#0969da"/>'
                     f'<text x="{label_width + width + 6:.1f}" y="{y + 14}">{html.escape(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_heatmap(heatmap: Heatmap) -> str:
    """Rows of cells shaded by weight (the darkest is the largest weight of the map), the source
    pieces written slanted above the columns, the output pieces left of the rows."""
    cell, left, top = 16, 110, 90
    shown = lambda piece: html.escape(piece.replace(" ", "\u2581"))  # noqa: E731  (a visible space)
    largest = max((w for row in heatmap.weights for w in row), default=0.0) or 1.0
    width, height = left + cell * len(heatmap.columns) + 10, top + cell * len(heatmap.rows) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{width}" height="{height}" role="img">']
    for j, piece in enumerate(heatmap.columns):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x:.0f}" y="{top - 6}" transform="rotate(-60 {x:.0f} {top - 6})">{shown(piece)}</text>')
    for i, (piece, row) in enumerate(zip(heatmap.rows, heatmap.weights)):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{shown(piece)}</text>')
        for j, weight in enumerate(row):
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="#0969da" '
                         f'fill-opacity="{weight / largest:.3f}"><title>{weight:.3f}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


_LINE_COLOURS = ("#0969da", "#bc4c00", "#1a7f37")


def _svg_lines(chart: LineChart) -> str:
    """The lines of a LineChart, scaled to the box (lowest value at the bottom), with a legend.
    The numbers are in the table beside it."""
    width, height, pad = 520, 200, 8
    values = [v for series in chart.series.values() for v in series if v == v]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    first, last = (chart.x[0], chart.x[-1]) if chart.x else (0, 1)

    def point(x: float, y: float) -> str:
        px = pad + (width - 2 * pad) * ((x - first) / ((last - first) or 1))
        py = pad + (height - 2 * pad) * (1 - (y - low) / ((high - low) or 1))
        return f"{px:.1f},{py:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lines" width="{width + 140}" height="{height}" role="img">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="none" stroke="#d0d7de"/>']
    for i, (name, series) in enumerate(chart.series.items()):
        colour = _LINE_COLOURS[i % len(_LINE_COLOURS)]
        points = " ".join(point(x, y) for x, y in zip(chart.x, series) if y == y)
        legend_y = 20 + 18 * i  # a swatch of the line's colour (the page's CSS sets the text's own colour)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
                     f'<line x1="{width + 10}" y1="{legend_y - 4}" x2="{width + 28}" y2="{legend_y - 4}" '
                     f'stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{width + 34}" y="{legend_y}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(table: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in table.headers)
    rows = "".join("<tr>" + "".join(f'<td class="{esc(str(v))}">{esc(str(v))}</td>' if v in ("BLOCK", "warn", "pass", "FAIL")
                                    else f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html(sections: list[Section], title: str) -> str:
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>",
            "<nav>" + "".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections if s.anchor) + "</nav>"]
    for section in sections:
        body.append(f'<section id="{section.anchor}"><h2>{esc(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, str):
                body.append(f"<p>{esc(block)}</p>")
            elif isinstance(block, Chart):
                body.append(f'<figure class="chart"><figcaption>{esc(block.title)}</figcaption>{_svg_chart(block)}</figure>')
            elif isinstance(block, Heatmap):
                body.append(f'<figure class="attention"><figcaption>{esc(block.title)}</figcaption>{_svg_heatmap(block)}</figure>')
            elif isinstance(block, LineChart):
                body.append(f'<h3>{esc(block.title)}</h3><figure class="curve">{_svg_lines(block)}</figure>')
                body.append(_html_table(block.table()))
            else:
                body.append(_html_table(block))
        body.append("</section>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


