"""The data gate through the CLI: a schema anomaly and planted data problems stop a run before
Transform (or only warn, by policy), with the findings named in the error, the summary and the
report; ExampleGen reads the newest span."""

import glob
import json
import re

import pytest

from test_end_to_end import SMALL_MODEL, textflow, write_reviews
from pipeline_args import FIXED_ACCELERATION

pytestmark = pytest.mark.slow


def test_anomalies_stop_the_run_before_training(tmp_path):
    # The shipped IMDB schema requires a 'label' column; without --label-column the data lacks it.
    result = textflow("run", *FIXED_ACCELERATION, "--set", "data.schema=imdb", "--workspace", "ws", "--serving-dir", "serving",
                      *SMALL_MODEL, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "data validation failed" in result.stderr
    assert "feature 'label'" in result.stderr
    assert "Trainer_rnn" not in result.stdout and "Transform started" not in result.stdout
    assert not (tmp_path / "serving").exists()


def split_of(record):
    """The split ExampleGen's hash puts a record in (the default 80/10/10)."""
    from components.data.text_example_gen import _carved_split, _to_example

    return ["train", "validation", "test"][_carved_split(_to_example(record), [80, 90, 100])]


def write_planted_span(path, reviews, unseen_label=True):
    """Short reviews (their lengths drift from full ones), plus one empty text, one text shared by
    train and test (under two labels), and (`unseen_label`) one label only the test split has."""
    rows = [{"review": r["review"][:60], "sentiment": r["sentiment"]} for r in reviews]
    rows.append({"review": "   ", "sentiment": "0"})
    shared = next(f"A film I saw {i} times." for i in range(100)
                  if {split_of({"review": f"A film I saw {i} times.", "sentiment": s}) for s in "01"} == {"train", "test"})
    rows += [{"review": shared, "sentiment": "0"}, {"review": shared, "sentiment": "1"}]
    if unseen_label:
        rows.append(next(row for i in range(100) for row in [{"review": f"Neither good nor bad, take {i}.", "sentiment": "2"}]
                         if split_of(row) == "test"))
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def test_planted_data_problems_block_or_warn_by_policy(tmp_path):
    """Span 1 is clean; span 2 has an empty text, a text in both splits, an unseen label and shorter
    texts. Under `block` the run stops before Transform naming exactly those; under `warn` (all but
    the unseen label, which always blocks, removed from the data) it goes on and the summary lists them. ExampleGen reads the newest span ({SPAN}) each time."""
    (tmp_path / "span-1").mkdir()
    write_reviews(tmp_path / "span-1" / "part.jsonl", rows=60)
    args = ["run", *FIXED_ACCELERATION, "--data", str(tmp_path / "span-{SPAN}" / "*.jsonl"), "--format", "jsonl", "--text-column", "review",
            "--label-column", "sentiment", "--workspace", "ws", "--serving-dir", "serving", "--models", "rnn",
            "--tokenizer", "char",  # 50 reviews' words would be findings of their own (vocabulary coverage, token skew)
            "--set", "rnn.train_steps=10", *SMALL_MODEL,
            # a few validation and test reviews (span 2: 2 and 7): their length and label shares differ from train's by
            # chance more than the defaults allow (2 reviews' lengths diverge from any histogram: JS 1.0, its maximum)
            "--set", "validation.skew.text_length_js=1.0", "--set", "validation.skew.label_linf=0.9",
            # span 2's few validation reviews hold no positive one by chance: warned, not one of the planted problems
            "--set", "validation.policy.missing_class=warn"]
    clean = textflow(*args, cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "span 1" in clean.stdout and "drift: not measured (no earlier span)" in clean.stdout
    assert "no data findings" in clean.stdout, clean.stdout
    clean_report = open(re.search(r"Report: (\S+\.html)", clean.stdout).group(1), encoding="utf-8").read()
    assert "most confident right and wrong answers" in clean_report and "<h3>Training curve</h3>" in clean_report

    (tmp_path / "span-2").mkdir()
    with open(tmp_path / "span-1" / "part.jsonl", encoding="utf-8") as f:
        reviews = [json.loads(line) for line in f]
    write_planted_span(tmp_path / "span-2" / "part.jsonl", reviews)
    blocked = textflow(*args, "--set", "validation.policy.drift=block", "--set", "validation.policy.duplicate_across_splits=block",
                       cwd=tmp_path)
    assert blocked.returncode == 4, blocked.stdout + blocked.stderr
    found = re.findall(r"\[block\] (\w+), split '([\w/]+)', feature '(\w+)'", blocked.stderr)
    assert sorted(found) == [("drift", "train", "tokens_per_text"), ("duplicate_across_splits", "train/test", "review"),
                             ("empty_text", "train", "review"), ("unseen_label", "test", "sentiment")], blocked.stderr
    assert "span 1's train split" in blocked.stderr and "'2' (1 examples) never occurs in train" in blocked.stderr
    assert "Transform started" not in blocked.stdout and "Trainer_rnn" not in blocked.stdout
    report = re.search(r"The report of this run \(data, findings, why it stopped\): (\S+)", blocked.stderr).group(1)
    page = open(report, encoding="utf-8").read()
    assert "Stopped by the data gate before training: 4 finding(s)" in page and page.count("<td class=\"BLOCK\">") == 4

    # An unseen label always blocks (no class can predict it); without it, the other three only warn.
    write_planted_span(tmp_path / "span-2" / "part.jsonl", reviews, unseen_label=False)
    kinds = ["empty_text", "duplicate_across_splits", "drift"]
    warned = textflow(*args, *[f"--set=validation.policy.{kind}=warn" for kind in kinds], cwd=tmp_path)
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "Trainer_rnn_classifier finished" in warned.stdout
    listed = re.findall(r"\[warn\] (\w+), split", warned.stdout)
    assert sorted(listed) == sorted(kinds + ["missing_class"]), warned.stdout
    page = open(re.search(r"Report: (\S+\.html)", warned.stdout).group(1), encoding="utf-8").read()
    assert page.count("<td class=\"warn\">") == 4 and "Model: textflow-rnn-classifier (rnn)" in page
    markdown = textflow("report", "--format", "md", "--workspace", "ws", "--serving-dir", "serving", cwd=tmp_path)
    assert markdown.returncode == 0 and "| warn | drift | train | tokens_per_text |" in markdown.stdout, markdown.stderr
    assert re.search(r"drift, train against span 1: .*tokens_per_text \d\.\d+", warned.stdout)
    from ml_metadata import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(tmp_path / "ws" / "metadata.sqlite")))
    spans = sorted(a.custom_properties["span"].int_value for a in store.get_artifacts_by_type("Examples") if "/TextExampleGen/" in a.uri)
    assert spans == [1, 2, 2]  # span 2 was read again once its files changed
    latest = sorted(glob.glob(f"{tmp_path}/ws/runs/*/decision.json"))[-1]  # run folders are named by start time
    record = json.loads(open(latest).read())
    assert sorted(f["kind"] for f in record["data_validation"]["findings"]) == sorted(kinds + ["missing_class"])
