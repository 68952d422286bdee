"""The review report of a run: one self-contained HTML file, or the same content as Markdown or text.

TFX shows statistics and anomalies in notebooks only. This report is what a person reads before
a model goes to serving: the run, the data (counts, length histograms, top tokens, coverage,
labels), the schema, the data findings, drift and skew, each model's metrics, slices, baseline
comparison, blessing decision and serving check, and the serving directory's pushes and
promotions. It is built from what the run kept (`runs/<run id>/decision.json`) and the audit
log, into one list of sections whose numbers are formatted once, so every format shows the same
numbers (`operations.render` turns them into HTML, Markdown or text).
"""

from __future__ import annotations

import json
import os
from typing import Optional

from components.serving.serving_audit import history
from models.runtime.atomic_file import write_atomically
from operations.render import ReportError, render
from operations.run_record import DECISION_FILE, RUNS_DIR
from operations.summary import describe_training
from pipeline.config import Config
from tasks import registry as tasks
from tasks.document import Block, Chart, LineChart, Section, Table, is_detail_metric
from tasks.document import number as _number

REPORT_FILE = "report.html"


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
    blocks: list[Block] = [f"Pipeline {record.get('pipeline', '?')}, run {record.get('run_id', '?')}.", outcome]
    if families:
        blocks.append(Table(["model", "task", "decision"], [[f["model_name"], f["task"], f["decision"]] for f in families]))
    return Section("Run summary", blocks, "run")


def _data_sections(data: dict) -> list[Section]:
    if not data:
        return [Section("Data", ["This run kept no data validation (it ran before the TextValidator existed)."], "data")]
    profiles = data.get("profiles", {})
    vocabulary = data.get("vocabulary", "the train split's vocabulary")
    splits = list(profiles)
    counts = Table(["split", "examples", "tokens", "mean tokens per text", "shortest", "longest",
                    "vocabulary coverage", "mean token length"],
                   [[s, _number(p["examples"]), _number(p["tokens"]), _number(p["mean_tokens"], 1), _number(p["min_tokens"]),
                     _number(p["max_tokens"]), _number(p["vocabulary_coverage"]), _number(p["avg_token_length"], 3)]
                    for s, p in profiles.items()])
    blocks: list[Block] = [
        f"Span {data.get('span')}; {vocabulary} of {_number(data.get('vocabulary_size'))} tokens. Coverage is the "
        f"share of a split's tokens found in it (at least {_number(data.get('min_vocabulary_coverage'))} "
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
    anomalies: list[Block] = [
        Table(["severity", "kind", "split", "feature", "explanation", "examples"],
              [[("BLOCK" if f["action"] == "block" else "warn"), f["kind"], f["split"], f["feature"], f["explanation"],
                "; ".join(f["examples"]) or "-"] for f in findings])
        if findings else "No anomalies: every check passed."]
    policy = data.get("policy", {})
    anomalies.append("Policy: " + ", ".join(f"{kind} {action}" for kind, action in policy.items()) + ".")
    comparisons = [[f"skew: {m.get('split', 'eval')} against train", m] for m in data.get("skew", [])]
    comparisons += [[f"drift: train against span {data.get('previous_span')}", m] for m in data.get("drift", [])]
    drift: list[Block] = [
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
    blocks: list[Block] = [
        f"Decision: {family['decision']}.",
        *([family["trivial_baseline"][0].upper() + family["trivial_baseline"][1:] + "."]
          if family.get("trivial_baseline") else []),
        *[line.strip()[0].upper() + line.strip()[1:] + "." for line in describe_training(family.get("training", {}))],
        Table(["metric", "candidate", "baseline"],
              [[name, _number(value), _number(baseline.get(name))] for name, value in sorted(metrics.items())
               if not is_detail_metric(name)]),
        Table(["threshold", "kind", "candidate", "baseline", "limit", "result"],
              [[t["metric"], t["kind"], _number(t["candidate"]), _number(t["baseline"]), _number(t["threshold"]),
                "pass" if t["passed"] else "FAIL"] for t in family.get("thresholds", [])]),
    ]
    curve = family.get("training", {}).get("curve")
    if curve and curve.get("step"):
        blocks.append(LineChart("Training curve", "step", curve["step"],
                                {"loss": curve["loss"], "validation loss": curve["eval_loss"]}))
    slices = family.get("slices", {})
    if slices:
        key = tasks.get(family["task"]).key_metric(metrics)
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
    blocks += tasks.get(family["task"]).report_blocks(family)
    return Section(f"Model: {family['model_name']} ({family['family']})", blocks, f"model-{family['family']}")


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
        write_atomically(path, text)
    return text, path
