"""The blocks a review report is made of: paragraphs, tables, bar charts, line charts and
attention heatmaps, with numbers formatted once. The report (`operations.report`) puts them in
sections and renders them as HTML, Markdown or text; a task builds the blocks of its own views
(`Task.report_blocks`) from the same vocabulary."""

from __future__ import annotations

import dataclasses
from typing import Optional, Union


@dataclasses.dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclasses.dataclass
class Chart:
    """A bar chart: one bar per (label, value); `value` is already formatted, `size` draws the bar."""

    title: str
    bars: list[tuple[str, str, float]]


@dataclasses.dataclass
class Heatmap:
    """A matrix of weights in [0, 1]: an encoder-decoder's attention (one row per output piece,
    one column per source piece) or a tagger's confusion matrix. Drawn in the HTML report only
    (the text forms list the texts or tables beside it)."""

    title: str
    rows: list[str]
    columns: list[str]
    weights: list[list[float]]


@dataclasses.dataclass
class LineChart:
    """Lines over a shared x axis (the training curve: losses against steps). Every form shows
    it under its title as a table; the HTML form draws the lines too."""

    title: str
    x_name: str
    x: list[float]
    series: dict[str, list[float]]

    def table(self) -> Table:
        return Table([self.x_name, *self.series], [[number(x, 0), *(number(values[i]) for values in self.series.values())]
                                                   for i, x in enumerate(self.x)])


Block = Union[str, Table, Chart, Heatmap, LineChart]


@dataclasses.dataclass
class Section:
    title: str
    blocks: list[Block]
    anchor: str = ""


def number(value: Optional[float], digits: int = 4) -> str:
    """A metric as the report shows it: whole numbers with thousands separators, others to `digits`."""
    if value is None:
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def is_detail_metric(name: str) -> bool:
    """A metric one of a family (`tag/NOUN/f1`, `confusion/NOUN/VERB`) that its task's own report
    blocks show; the lists of a model's metrics leave it out."""
    return "/" in name
