"""The review report of a run: one self-contained HTML file, or the same content as Markdown or text.

TFX shows statistics and anomalies in notebooks only. This report is what a person reads before
a model goes to serving: the run, the data (counts, length histograms, top tokens, coverage,
labels), the schema, the data findings, drift and skew, each model's metrics, slices, baseline
comparison, blessing decision and serving check, and the serving directory's pushes and
promotions. It is built from what the run kept (`runs/<run id>/decision.json`) and the audit
log, into one list of sections whose numbers are formatted once, so every format shows the same
numbers. The HTML has its CSS inline and draws charts as inline SVG: it makes no network request.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
from typing import Optional, Union

from components.serving.serving_audit import history
from pipeline.config import Config
from pipeline.run_record import DECISION_FILE, RUNS_DIR
from pipeline.summary import describe_training

FORMATS = ("html", "md", "text")
REPORT_FILE = "report.html"


class ReportError(ValueError):
    """No run to report on; the message says which runs there are."""


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
    """Attention of an encoder-decoder: one row per output piece, one column per source piece,
    each cell a weight in [0, 1]. Drawn in the HTML report only (the text forms list the texts)."""

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
        return Table([self.x_name, *self.series], [[_number(x, 0), *(_number(values[i]) for values in self.series.values())]
                                                   for i, x in enumerate(self.x)])


@dataclasses.dataclass
class Section:
    title: str
    blocks: list[Union[str, Table, Chart, Heatmap, LineChart]]
    anchor: str = ""


def run_folders(config: Config) -> list[str]:
    """Folders of kept runs, oldest first (their names start with the run's time)."""
    root = os.path.join(os.path.abspath(config.workspace), RUNS_DIR)
    if not os.path.isdir(root):
        return []
    return sorted(os.path.join(root, name) for name in os.listdir(root)
                  if os.path.exists(os.path.join(root, name, DECISION_FILE)))


def find_run(config: Config, run: str = "latest") -> str:
    """The folder of run `run` ("latest", or a run id as printed by `textflow run`)."""
    folders = run_folders(config)
    if not folders:
        raise ReportError(f"no run has been kept in {os.path.abspath(config.workspace)} yet; run `textflow run` first")
    if run == "latest":
        return folders[-1]
    wanted = run.replace(":", "-").rstrip("/")
    for folder in folders:
        if os.path.basename(folder) == os.path.basename(wanted):
            return folder
    raise ReportError(f"no run {run!r} in {os.path.dirname(folders[0])} (kept runs: "
                      f"{', '.join(os.path.basename(f) for f in folders[-5:])})")


def build_report(record: dict, audit: list[dict]) -> list[Section]:
    """The report's sections from a kept run record and the serving directory's audit log."""
    data = record.get("data_validation") or {}
    sections = [_run_section(record, data), *_data_sections(data)]
    for family in record.get("families", []):
        sections.append(_model_section(family))
    names = {f["model_name"] for f in record.get("families", [])}
    entries = [e for e in audit if e["model"] in names] if names else audit
    rows = [[e.get("time", ""), e.get("action", ""), e.get("model", ""), str(e.get("version") or "-"), e.get("label") or "-",
             e.get("user", ""), e.get("reason") or "-"] for e in entries]
    sections.append(Section("Pushes and promotions",
                            [Table(["time", "action", "model", "version", "label", "user", "reason"], rows) if rows
                             else "Nothing has been pushed or promoted for these models yet."], "history"))
    return sections


def _number(value: Optional[float], digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def _run_section(record: dict, data: dict) -> Section:
    findings = data.get("findings", [])
    blocking = [f for f in findings if f["action"] == "block"]
    families = record.get("families", [])
    if blocking:
        outcome = (f"Stopped by the data gate before training: {len(blocking)} finding(s) whose policy is 'block' "
                   f"(see Anomalies). Nothing was trained or pushed.")
    else:
        outcome = (f"Trained {len(families)} model(s); {sum(f['blessed'] for f in families)} blessed, "
                   f"{sum(bool(f['pushed_to']) for f in families)} pushed. "
                   f"{len(findings)} data finding(s), none blocking.")
    blocks: list[Union[str, Table, Chart]] = [f"Pipeline {record.get('pipeline', '?')}, run {record.get('run_id', '?')}.", outcome]
    if families:
        blocks.append(Table(["model", "task", "decision"], [[f["model_name"], f["task"], f["decision"]] for f in families]))
    return Section("Run summary", blocks, "run")


def _data_sections(data: dict) -> list[Section]:
    if not data:
        return [Section("Data", ["This run kept no data validation (it ran before the TextValidator existed)."], "data")]
    profiles = data.get("profiles", {})
    splits = list(profiles)
    counts = Table(["split", "examples", "tokens", "mean tokens per text", "shortest", "longest",
                    "vocabulary coverage", "mean token length"],
                   [[s, _number(p["examples"]), _number(p["tokens"]), _number(p["mean_tokens"], 1), _number(p["min_tokens"]),
                     _number(p["max_tokens"]), _number(p["vocabulary_coverage"]), _number(p["avg_token_length"], 3)]
                    for s, p in profiles.items()])
    blocks: list[Union[str, Table, Chart]] = [
        f"Span {data.get('span')}; train vocabulary of {_number(data.get('vocabulary_size'))} tokens. Coverage is the "
        f"share of a split's tokens found in the train vocabulary (at least {_number(data.get('min_vocabulary_coverage'))} "
        f"required).", counts]
    for split, profile in profiles.items():
        blocks.append(Chart(f"Text length in tokens, {split} split",
                            [(f"{_number(lo, 0)}-{_number(hi, 0)}", _number(count), count)
                             for lo, hi, count in profile["length_histogram"]]))
    top = [profiles[s]["top_tokens"] for s in splits]
    rows = []
    for rank in range(max((len(t) for t in top), default=0)):
        row = [str(rank + 1)]
        for tokens in top:
            token, count = tokens[rank] if rank < len(tokens) else ("", None)
            row += [repr(token) if token else "", _number(count) if count is not None else ""]
        rows.append(row)
    blocks.append("Most frequent tokens:")
    blocks.append(Table(["rank", *[h for s in splits for h in (f"{s} token", f"{s} count")]], rows))
    if any(p.get("labels") for p in profiles.values()):
        for split, profile in profiles.items():
            total = sum(profile["labels"].values()) or 1
            blocks.append(Chart(f"Label balance, {split} split",
                                [(str(label), f"{_number(n)} ({n / total:.1%})", n) for label, n in profile["labels"].items()]))
    schema = Table(["feature", "type", "presence", "domain", "constraints"],
                   [[r["feature"], r["type"], r["presence"], r["domain"], r["constraints"]] for r in data.get("schema", [])])
    findings = data.get("findings", [])
    anomalies: list[Union[str, Table, Chart]] = [
        Table(["severity", "kind", "split", "feature", "explanation", "examples"],
              [[("BLOCK" if f["action"] == "block" else "warn"), f["kind"], f["split"], f["feature"], f["explanation"],
                "; ".join(f["examples"]) or "-"] for f in findings])
        if findings else "No anomalies: every check passed."]
    policy = data.get("policy", {})
    anomalies.append("Policy: " + ", ".join(f"{kind} {action}" for kind, action in policy.items()) + ".")
    comparisons = [["skew: eval against train", m] for m in data.get("skew", [])]
    comparisons += [[f"drift: train against span {data.get('previous_span')}", m] for m in data.get("drift", [])]
    drift: list[Union[str, Table, Chart]] = [
        Table(["comparison", "feature", "measure", "value", "limit", "result"],
              [[what, m["feature"], m["measure"].replace("_", " ").lower(), _number(m["value"]), _number(m["threshold"]),
                "pass" if m["passed"] else "FAIL"] for what, m in comparisons])]
    if data.get("previous_span") is None:
        drift.append("Drift was not measured: there is no earlier span (give the data path a {SPAN} to compare spans).")
    return [Section("Data", blocks, "data"), Section("Schema", [schema], "schema"),
            Section("Anomalies", anomalies, "anomalies"), Section("Drift and skew", drift, "drift")]


def _model_section(family: dict) -> Section:
    metrics = family.get("metrics", {})
    baseline = family.get("baseline_metrics", {})
    blocks: list[Union[str, Table, Chart]] = [
        f"Decision: {family['decision']}.",
        *([family["trivial_baseline"][0].upper() + family["trivial_baseline"][1:] + "."]
          if family.get("trivial_baseline") else []),
        *[line.strip()[0].upper() + line.strip()[1:] + "." for line in describe_training(family.get("training", {}))],
        Table(["metric", "candidate", "baseline"],
              [[name, _number(value), _number(baseline.get(name))] for name, value in sorted(metrics.items())]),
        Table(["threshold", "kind", "candidate", "baseline", "limit", "result"],
              [[t["metric"], t["kind"], _number(t["candidate"]), _number(t["baseline"]), _number(t["threshold"]),
                "pass" if t["passed"] else "FAIL"] for t in family.get("thresholds", [])]),
    ]
    curve = family.get("training", {}).get("curve")
    if curve and curve.get("step"):
        blocks.append(LineChart("Training curve", "step", curve["step"],
                                {"loss": curve["loss"], "eval loss": curve["eval_loss"]}))
    slices = family.get("slices", {})
    if slices:
        key = next(t["metric"] for t in family["thresholds"]) if family.get("thresholds") else None
        blocks.append(Table(["slice", key or "metric", "examples"],
                            [[name, _number(values.get(key)), _number(values.get("example_count"))]
                             for name, values in slices.items()]))
    check = family.get("serving_check")
    if check:
        latency = check.get("latency", {})
        verdict = "passed" if check.get("blessed") else "FAILED: " + "; ".join(check.get("problems", []))
        blocks.append(f"Serving check {verdict}; serving_default p50 {_number(latency.get('p50_ms'), 1)} ms, "
                      f"p99 {_number(latency.get('p99_ms'), 1)} ms.")
    blocks.append(f"Pushed to {family['pushed_to']}." if family.get("pushed_to") else "Not pushed.")
    blocks += _sample_blocks(family)
    blocks += _seq2seq_blocks(family)
    return Section(f"Model: {family['model_name']} ({family['family']})", blocks, f"model-{family['family']}")


PAIR_SCORE = {"seq2seq": ("bleu", "BLEU"), "denoise": ("chrf", "chrF")}


def _sample_blocks(family: dict) -> list[Union[str, Table]]:
    """What a language model writes, what a classifier answers and what a VAE reconstructs, on eval examples."""
    samples = family.get("samples") or []
    if not samples or family.get("task") not in ("language_model", "classifier", "vae"):
        return []
    if family["task"] == "vae":
        blocks: list[Union[str, Table]] = [
            "What its code holds: each eval text (the model reads its first transform.sequence_length tokens) and "
            "the text decoded greedily from its mean code.",
            Table(["text", "reconstruction"], [[s["text"][:300], s["reconstruction"]] for s in samples]),
        ]
        line = samples[0].get("interpolation")
        if line:
            blocks += ["Interpolation: texts decoded from evenly spaced points on the line from the first text's "
                       "code to the second's.",
                       Table(["point", "text"], [[f"{i}/{len(line) - 1}", t] for i, t in enumerate(line)])]
        return blocks
    if family["task"] == "language_model":
        return ["What it writes: each eval example's first words, continued greedily and sampled (top-p 0.9).",
                Table(["prompt", "greedy", "top-p 0.9"], [[s["prompt"], s["greedy"], s["top_p"]] for s in samples])]
    return ["Its most confident right and wrong answers among the first eval examples.",
            Table(["text", "label", "predicted", "probability", "answer"],
                  [[s["text"][:200], s["label"], s["predicted"], _number(s["probability"]),
                    "right" if s["right"] else "wrong"] for s in samples])]


def _seq2seq_blocks(family: dict) -> list[Union[str, Table, Chart, Heatmap]]:
    """An encoder-decoder's decoded score by source length, and sample outputs with attention."""
    if family.get("task") not in PAIR_SCORE:
        return []
    metric, label = PAIR_SCORE[family["task"]]
    blocks: list[Union[str, Table, Chart, Heatmap]] = []
    bars = [(name.partition("=")[2], _number(values.get(metric), 2), max(values.get(metric) or 0.0, 0.0))
            for name, values in family.get("slices", {}).items()
            if name.startswith("length_bucket=") and values.get(metric) == values.get(metric)]  # NaN: nothing decoded
    if bars:
        blocks.append(Chart(f"{label} by source length (subword tokens)", bars))
    samples = family.get("samples") or []
    if samples:
        blocks.append(Table(["source", "reference", "output"], [[s["source"], s["reference"], s["output"]] for s in samples]))
        for i, sample in enumerate(samples, start=1):
            blocks.append(Heatmap(f"Attention while writing example {i}: output pieces (rows) over source pieces",
                                  sample["output_pieces"], sample["source_pieces"], sample["attention"]))
    return blocks


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


def write_report(config: Config, run: str = "latest", fmt: str = "html", output: Optional[str] = None) -> tuple[str, str]:
    """Renders the report of `run`; writes it to `output` (HTML: the run folder's report.html by
    default). Returns (the text, the path written or "")."""
    folder = find_run(config, run)
    with open(os.path.join(folder, DECISION_FILE), encoding="utf-8") as f:
        record = json.load(f)
    sections = build_report(record, history(os.path.abspath(config.serving_dir)))
    text = render(sections, fmt, f"textflow report: {record.get('pipeline', '')}, run {record.get('run_id', '')}")
    path = output or (os.path.join(folder, REPORT_FILE) if fmt == "html" else "")
    if path:
        temporary = f"{path}.tmp-{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    return text, path
