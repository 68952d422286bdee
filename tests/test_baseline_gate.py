"""Models that earn their blessing, end to end: a classifier of shuffled labels and an untrained
language model are held under their trivial baselines (the majority class, the unigram model);
with the floor off they are judged by the other thresholds alone; and `--eval-data` makes the
eval split exactly a given file."""

import csv
import glob
import gzip
import json
import os
import random
import re

import pytest
import tensorflow as tf

from test_end_to_end import SMALL_MODEL, textflow, write_reviews
from pipeline.config import data_path, load_config

pytestmark = pytest.mark.slow

FLOOR_OFF = ["--set", "evaluation.require_beat_baseline=false"]
TINY_RNN = [
    "--models", "rnn", "--sequence-length", "64", "--set", "rnn.units=16", "--set", "rnn.embedding_dim=8",
    "--set", "rnn.layers=1", "--set", "rnn.train_steps=40", "--set", "rnn.eval_steps=2", "--set", "rnn.batch_size=8",
]


def decision_of(result):
    folder = re.search(r"kept in (\S+)", result.stdout).group(1)
    (family,) = json.loads(open(os.path.join(folder, "decision.json")).read())["families"]
    return family


@pytest.fixture(scope="module")
def shuffled_label_runs(tmp_path_factory):
    """The embedded IMDB sample with its labels shuffled: nothing in a text predicts its label."""
    root = tmp_path_factory.mktemp("shuffled")
    with open(data_path(load_config()), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = [r["label"] for r in rows]
    random.Random(7).shuffle(labels)
    with open(root / "shuffled.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["label", "text"])
        writer.writeheader()
        writer.writerows({"label": y, "text": r["text"]} for r, y in zip(rows, labels))
    args = ["run", "--data", "shuffled.csv", "--label-column", "label", "--workspace", "ws", "--serving-dir", "serving",
            *TINY_RNN, "--set", "evaluation.min_accuracy=0", "--set", "evaluation.min_auc=0"]
    floor_on = textflow(*args, cwd=root)
    floor_off = textflow(*args, *FLOOR_OFF, cwd=root)
    return root, floor_on, floor_off


def test_a_classifier_of_shuffled_labels_is_held_under_the_majority_class(shuffled_label_runs):
    _, result, _ = shuffled_label_runs
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"rnn classifier \(textflow-rnn-classifier, [\d,]+ parameters\): accuracy \d\.\d+, AUC", out), out
    line_after = out.split("rnn classifier (")[1].splitlines()[1]
    assert re.match(r"    trivial baseline: majority class accuracy 0\.\d+ on \d+ eval examples; beating it takes "
                    r"accuracy >= \d\.\d+ \(\+2 standard errors\) and AUC >= 0\.55", line_after), line_after
    needed = float(re.search(r"accuracy >= (\d\.\d+)", line_after).group(1))
    assert ("this eval split is too small to show that any model beats a constant answer" in line_after) == (needed > 1)
    assert "NOT BLESSED:" in out and "    not pushed" in out
    family = decision_of(result)
    assert family["decision"].startswith("not blessed: ") and "does not beat its trivial baseline (majority_class_accuracy" \
        in family["decision"], family["decision"]
    floor = next(t for t in family["thresholds"] if t["kind"] == "floor" and t["metric"] == "accuracy_above_chance")
    assert not floor["passed"] and family["baseline_floor"] == "on"
    metrics = family["metrics"]
    assert metrics["accuracy"] < metrics["accuracy"] - metrics["accuracy_above_chance"]  # under majority + 2 s.e.
    assert family["pushed_to"] is None


def test_with_the_floor_off_the_shuffled_classifier_is_judged_by_the_other_thresholds(shuffled_label_runs):
    root, _, result = shuffled_label_runs
    assert result.returncode == 0, result.stdout + result.stderr
    family = decision_of(result)
    assert family["blessed"] and family["baseline_floor"] == "off"
    assert "the trivial-baseline floor was off" in family["decision"]
    assert {t["metric"] for t in family["thresholds"]} == {"accuracy", "auc"}
    assert "(floor off: evaluation.require_beat_baseline is false)" in result.stdout
    assert os.listdir(root / "serving" / "textflow-rnn-classifier")


@pytest.fixture(scope="module")
def untrained_lm_runs(tmp_path_factory):
    """A language model with learning rate 0: its predictions stay the near-uniform ones of its
    initial weights, far above the unigram model of the text."""
    root = tmp_path_factory.mktemp("uniform")
    data = write_reviews(root / "reviews.jsonl")
    args = ["run", "--data", data, "--format", "jsonl", "--text-column", "review", "--workspace", "ws",
            "--serving-dir", "serving", *TINY_RNN, "--set", "rnn.learning_rate=0", "--set", "evaluation.max_cross_entropy=6"]
    return root, textflow(*args, cwd=root), textflow(*args, *FLOOR_OFF, cwd=root)


def test_a_language_model_of_uniform_tokens_is_not_blessed(untrained_lm_runs):
    _, result, _ = untrained_lm_runs
    assert result.returncode == 0, result.stdout + result.stderr
    family = decision_of(result)
    metrics = family["metrics"]
    assert metrics["cross_entropy_per_token"] > metrics["unigram_cross_entropy"] > 2.0
    assert metrics["cross_entropy_below_unigram"] == pytest.approx(
        metrics["unigram_cross_entropy"] - metrics["cross_entropy_per_token"], abs=1e-4)
    assert not family["blessed"] and "does not beat its trivial baseline (unigram_cross_entropy" in family["decision"]
    assert re.search(r"    trivial baseline: the train split's unigram model, \d\.\d+ nats/token on the eval split; "
                     r"beating it takes cross-entropy <= \d\.\d+ \(0\.05 below\)\n", result.stdout), result.stdout
    assert re.search(r"FAIL: does not beat its trivial baseline \(unigram_cross_entropy \d\.\d+\): "
                     r"cross_entropy_below_unigram -\d\.\d+ >= 0\.0500 \(floor\)", result.stdout), result.stdout


def test_with_the_floor_off_the_uniform_language_model_passes_the_value_threshold(untrained_lm_runs):
    root, _, result = untrained_lm_runs
    assert result.returncode == 0, result.stdout + result.stderr
    family = decision_of(result)
    assert family["blessed"] and family["baseline_floor"] == "off" and family["pushed_to"]
    assert [t["metric"] for t in family["thresholds"]] == ["cross_entropy_per_token"]


def test_the_report_shows_the_trivial_baseline_and_how_training_went(untrained_lm_runs):
    _, result, _ = untrained_lm_runs
    page = open(re.search(r"Report: (\S+\.html)", result.stdout).group(1), encoding="utf-8").read()
    assert "Trivial baseline: the train split&#x27;s unigram model" in page or "Trivial baseline: the train split's" in page
    assert re.search(r"Trained \d+ steps \([\d.]+ epochs, [\d,]+ examples of \d+ training texts; size small\)", page)


def examples_of(pattern):
    texts = []
    for path in glob.glob(pattern):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            texts.append(example.features.feature["review"].bytes_list.value[0].decode("utf-8"))
    return texts


def test_eval_data_is_the_eval_split_and_its_unseen_label_is_found(tmp_path):
    reviews = [json.loads(line) for line in open(write_reviews(tmp_path / "all.jsonl"))]
    train, held_out = reviews[:45], reviews[45:]
    held_out[0] = {**held_out[0], "sentiment": "2"}  # a label the train file never shows
    for name, rows in (("train.jsonl", train), ("dev.jsonl", held_out)):
        with open(tmp_path / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    result = textflow("run", "--data", "train.jsonl", "--eval-data", "dev.jsonl", "--format", "jsonl",
                      "--text-column", "review", "--label-column", "sentiment", "--workspace", "ws",
                      "--serving-dir", "serving", *SMALL_MODEL, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr  # the unseen label blocks the run
    assert f"evaluated on {tmp_path / 'dev.jsonl'}" in result.stdout
    assert "unseen_label" in result.stderr and "'2'" in result.stderr, result.stderr
    assert "Trainer_rnn" not in result.stdout
    art = tmp_path / "ws" / "artifacts" / "TextExampleGen" / "examples"
    assert sorted(examples_of(f"{art}/*/Split-eval/*.gz")) == sorted(r["review"] for r in held_out)
    assert sorted(examples_of(f"{art}/*/Split-train/*.gz")) == sorted(r["review"] for r in train)
