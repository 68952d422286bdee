"""The review report: every section, the same numbers in HTML and Markdown, nothing fetched."""

import html
import json
import re

import pytest

from components.data.text_profile import SplitText, tokenize_texts
from components.data.text_schema_gen import mark_free_text
from components.data.text_validator import Settings, validate_text
from pipeline.config import load_config
from operations.report import ReportError, build_report, find_run, render, write_report
from tensorflow_metadata.proto.v0 import schema_pb2

SECTIONS = ["Run summary", "Data", "Schema", "Anomalies", "Drift and skew", "Model: textflow-rnn (rnn)", "Pushes and promotions"]


def data_validation(eval_texts):
    """A TextValidator report (as the run keeps it) for a small labelled corpus."""
    train_texts = [f"a fine film number {i}, with a long and winding plot" for i in range(40)]
    splits = {"train": SplitText("train", train_texts, ["pos", "neg"] * 20, tokenize_texts(train_texts, "word", False)),
              "eval": SplitText("eval", eval_texts, ["pos", "neg"] * (len(eval_texts) // 2), tokenize_texts(eval_texts, "word", False))}
    schema = schema_pb2.Schema()
    schema.feature.add(name="text", type=schema_pb2.BYTES).presence.min_fraction = 1.0
    mark_free_text(schema, ["text"], 0.5, 1000)
    policy = {"schema": "block", "empty_text": "block", "text_too_long": "warn", "out_of_vocabulary": "warn",
              "unseen_label": "block", "missing_class": "block", "duplicate_across_splits": "warn", "drift": "warn", "skew": "warn"}
    limits = {"text_length_js": 0.9, "token_js": 0.9, "label_linf": 0.9}
    settings = Settings("text", "label", "word", False, 1000, limits, limits, policy)
    findings, _, context = validate_text(splits, None, schema, settings)
    for finding in findings:
        finding.action = policy[finding.kind]
    return {"span": 0, "previous_span": None, "examples": {s: len(v.texts) for s, v in splits.items()}, **context,
            "policy": policy, "findings": [f.__dict__ for f in findings]}


def record(eval_texts):
    family = {"family": "rnn", "task": "classifier", "model_name": "textflow-rnn", "blessed": True,
              "decision": "blessed: every threshold passed; serving check passed; pushed to /s/textflow-rnn/7",
              "thresholds": [{"metric": "accuracy", "kind": "value", "candidate": 0.8125, "baseline": None, "threshold": 0.5,
                              "passed": True, "explanation": "pass: accuracy 0.8125 >= 0.5000 (value threshold)"}],
              "metrics": {"accuracy": 0.8125, "auc": 0.9031, "example_count": 16.0}, "baseline_metrics": {},
              "slices": {"length_bucket=0-63 tokens": {"accuracy": 0.75, "example_count": 8.0}},
              "serving_check": {"blessed": True, "problems": [], "latency": {"p50_ms": 8.5, "p99_ms": 10.9}},
              "pushed_to": "/s/textflow-rnn/7", "training": {}}
    return {"run_id": "2026-11-22T10:00:00.1", "pipeline": "textflow", "data_validation": data_validation(eval_texts),
            "families": [family]}


def visible_numbers(text):
    return sorted(re.findall(r"\d+(?:[.,]\d+)*", text))


def html_text(page):
    page = re.sub(r"<head>.*?</head>", "", page, flags=re.S)  # the tab title and the CSS are not on the page
    page = re.sub(r"<svg[^>]*>|<rect[^>]*/>", " ", page)  # drawing attributes are not content
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_a_clean_run_has_every_section_and_the_same_numbers_in_html_and_markdown():
    audit = [{"time": "2026-11-22T10:05:00Z", "action": "push", "model": "textflow-rnn", "version": 7, "label": None,
              "user": "ci", "reason": None}]
    sections = build_report(record([f"a fine film number {i}, with a long and winding plot" for i in range(40, 50)]), audit)
    assert [s.title for s in sections] == SECTIONS
    title = "textflow report: textflow, run 2026-11-22T10-04-02.808502"  # numbers in the title, as a real run id has
    page, markdown = render(sections, "html", title), render(sections, "md", title)
    assert "<svg" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "No anomalies: every check passed." in markdown
    assert "Text length in tokens, train split" in markdown and "| 'film' |" in markdown.replace("| 'film' | 40 |", "| 'film' |")
    md_text = re.sub(r"[|#\-]+", " ", markdown)
    assert visible_numbers(html_text(page)) == visible_numbers(md_text)
    text = render(sections, "text", "report")
    assert "Drift was not measured" in text and "#" in text  # bars drawn in characters


def test_findings_are_listed_with_severity_and_explanation():
    eval_texts = [f"a fine film number {i}, with a long and winding plot" for i in range(40, 49)] + ["  "]
    markdown = render(build_report(record(eval_texts), []), "md", "report")
    assert "| BLOCK | empty_text | eval | text | 1 of 10 texts are empty or only whitespace" in markdown
    assert "Stopped by the data gate before training: 1 finding(s)" in markdown


def test_reports_are_found_by_run_id_or_latest(tmp_path):
    config = load_config(overrides={"workspace": str(tmp_path / "ws"), "serving_dir": str(tmp_path / "serving")})
    with pytest.raises(ReportError, match="no run has been kept"):
        find_run(config)
    for run_id in ["2026-11-22T10-00-00.1", "2026-11-22T11-00-00.2"]:
        folder = tmp_path / "ws" / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "decision.json").write_text(json.dumps({**record(["a film"] * 2), "run_id": run_id}))
    assert find_run(config).endswith("11-00-00.2") and find_run(config, "2026-11-22T10:00:00.1").endswith("10-00-00.1")
    text, path = write_report(config, fmt="html")
    assert path.endswith("2026-11-22T11-00-00.2/report.html") and open(path).read() == text
    with pytest.raises(ReportError, match="no run 'nope'"):
        find_run(config, "nope")


SEQ2SEQ_FAMILY = {
    "family": "transformer", "task": "seq2seq", "model_name": "textflow-transformer-seq2seq", "blessed": True,
    "decision": "blessed: every threshold passed; serving check passed; pushed to /s/textflow-transformer-seq2seq/3",
    "trivial_baseline": "trivial baseline: copying the source, bleu 1.20 on 40 decoded eval examples",
    "thresholds": [{"metric": "bleu", "kind": "value", "candidate": 31.5, "baseline": None, "threshold": 1.0,
                    "passed": True, "explanation": "pass: bleu 31.5000 >= 1.0000 (value threshold)"}],
    "metrics": {"bleu": 31.5, "chrf": 55.2, "copy_bleu": 1.2, "example_count": 50.0},
    "baseline_metrics": {},
    "slices": {"length_bucket=0-63 tokens": {"bleu": 33.0, "example_count": 45.0},
               "length_bucket=64-255 tokens": {"bleu": float("nan"), "example_count": 5.0}},
    "pushed_to": "/s/textflow-transformer-seq2seq/3",
    "training": {"curve": {"step": [100, 200, 300], "loss": [5.1, 3.2, 2.7], "eval_loss": [4.8, 3.4, 3.1]}},
    "samples": [{"source": "Ein Hund läuft.", "reference": "A dog runs.", "output": "A dog is running.",
                 "source_pieces": ["Ein", " Hund", " läuft", ".", "</s>"],
                 "output_pieces": ["A", " dog", " is", " running", ".", "</s>"],
                 "attention": [[0.9, 0.05, 0.03, 0.01, 0.01]] * 6}],
}


def seq2seq_record(eval_texts):
    kept = record(eval_texts)
    kept["families"].append(SEQ2SEQ_FAMILY)
    return kept


def test_a_seq2seq_model_section_shows_bleu_by_source_length_samples_and_an_attention_heatmap():
    sections = build_report(seq2seq_record(["a fine film", "another film"]), [])
    page = render(sections, "html", "textflow report")
    heatmap = re.search(r'<svg[^>]*class="heatmap".*?</svg>', page, flags=re.S).group(0)
    assert heatmap.count("<rect") == 6 * 5  # output pieces x source pieces
    assert "\u2581Hund" in heatmap and "running" in heatmap  # spaces shown as a visible mark
    assert "BLEU by source length (subword tokens)" in page and "0-63 tokens" in page
    markdown = render(sections, "md", "textflow report")
    assert "| Ein Hund läuft. | A dog runs. | A dog is running. |" in markdown
    assert "<svg" not in markdown and "heatmap" not in markdown


def test_a_model_with_a_training_curve_shows_it_in_every_form_and_draws_it_in_html():
    sections = build_report(seq2seq_record(["a fine film", "another film"]), [])
    page = render(sections, "html", "textflow report")
    assert "<h3>Training curve</h3>" in page
    lines = re.findall(r'<polyline points="([^"]+)"', page)
    assert len(lines) == 2 and all(len(points.split()) == 3 for points in lines)  # loss and eval loss, 3 steps
    markdown = render(sections, "md", "textflow report")
    assert "### Training curve" in markdown and "| 200 | 3.2000 | 3.4000 |" in markdown
    assert "Training curve:" in render(sections, "text", "textflow report")


def test_a_vae_model_section_shows_texts_their_reconstructions_and_an_interpolation():
    vae = {**SEQ2SEQ_FAMILY, "family": "hvae", "task": "vae", "model_name": "textflow-hvae", "slices": {},
           "samples": [{"text": "To be, or not to be", "reconstruction": "To be, or not to me",
                        "interpolation": ["To be, or not to me", "To be or not", "What is the", "O what a"]},
                       {"text": "O what a noble mind", "reconstruction": "O what a noble kind"}]}
    kept = record(["a fine film", "another film"])
    kept["families"].append(vae)
    markdown = render(build_report(kept, []), "md", "textflow report")
    assert "| To be, or not to be | To be, or not to me |" in markdown
    assert "| O what a noble mind | O what a noble kind |" in markdown
    assert "| 0/3 | To be, or not to me |" in markdown and "| 3/3 | O what a |" in markdown
