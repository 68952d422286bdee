"""Models that earn their blessing, end to end: a classifier of shuffled labels is held under its
trivial baseline (the majority class); with the floor off it is judged by the other thresholds
alone; and `--eval-data` makes the test split exactly a given file, the validation split carved
from the training file. (The language model's floor:
test_baseline_gate_language_model.py.)"""

import csv
import glob
import json
import os
import random
import re

import pytest
import tensorflow as tf

from test_end_to_end import SMALL_MODEL, textflow, write_reviews
from pipeline.config import data_path, load_config
from pipeline_args import FIXED_ACCELERATION

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
    args = ["run", *FIXED_ACCELERATION, "--data", "shuffled.csv", "--label-column", "label", "--workspace", "ws", "--serving-dir", "serving",
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
    assert re.match(r"    trivial baseline: majority class accuracy 0\.\d+ on \d+ test examples; beating it takes "
                    r"accuracy >= \d\.\d+ \(\+2 standard errors\) and AUC >= 0\.55", line_after), line_after
    needed = float(re.search(r"accuracy >= (\d\.\d+)", line_after).group(1))
    assert ("this test split is too small to show that any model beats a constant answer" in line_after) == (needed > 1)
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


def examples_of(pattern):
    texts = []
    for path in glob.glob(pattern):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            texts.append(example.features.feature["review"].bytes_list.value[0].decode("utf-8"))
    return texts


def test_eval_data_is_the_test_split_and_its_unseen_label_is_found(tmp_path):
    reviews = [json.loads(line) for line in open(write_reviews(tmp_path / "all.jsonl"))]
    train, held_out = reviews[:45], reviews[45:]
    held_out[0] = {**held_out[0], "sentiment": "2"}  # a label the train file never shows
    for name, rows in (("train.jsonl", train), ("dev.jsonl", held_out)):
        with open(tmp_path / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    result = textflow("run", *FIXED_ACCELERATION, "--data", "train.jsonl", "--eval-data", "dev.jsonl", "--format", "jsonl",
                      "--text-column", "review", "--label-column", "sentiment", "--workspace", "ws",
                      "--serving-dir", "serving", *SMALL_MODEL, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr  # the unseen label blocks the run
    assert f"tested on {tmp_path / 'dev.jsonl'}" in result.stdout
    assert "unseen_label" in result.stderr and "'2'" in result.stderr, result.stderr
    assert "Trainer_rnn" not in result.stdout
    art = tmp_path / "ws" / "artifacts" / "TextExampleGen" / "examples"
    assert sorted(examples_of(f"{art}/*/Split-test/*.gz")) == sorted(r["review"] for r in held_out)
    fitted, chosen = examples_of(f"{art}/*/Split-train/*.gz"), examples_of(f"{art}/*/Split-validation/*.gz")
    assert chosen and sorted(fitted + chosen) == sorted(r["review"] for r in train)  # validation: carved from train
