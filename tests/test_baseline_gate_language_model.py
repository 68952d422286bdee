"""The unigram floor end to end: a language model that learned nothing (learning rate 0) is held
under the train split's unigram model; with the floor off it is judged by its value threshold."""

import re

import pytest

from test_baseline_gate import FLOOR_OFF, TINY_RNN, decision_of
from test_end_to_end import textflow, write_reviews
from pipeline_args import FIXED_ACCELERATION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def untrained_lm_runs(tmp_path_factory):
    """A language model with learning rate 0: its predictions stay the near-uniform ones of its
    initial weights, far above the unigram model of the text."""
    root = tmp_path_factory.mktemp("uniform")
    data = write_reviews(root / "reviews.jsonl")
    args = ["run", *FIXED_ACCELERATION, "--data", data, "--format", "jsonl", "--text-column", "review", "--workspace", "ws",
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
    assert re.search(r"    trivial baseline: the train split's unigram model, \d\.\d+ nats/token on the test split; "
                     r"beating it takes cross-entropy <= \d\.\d+ \(0\.05 below\)\n", result.stdout), result.stdout
    assert re.search(r"FAIL: does not beat its trivial baseline \(unigram_cross_entropy \d\.\d+\): "
                     r"cross_entropy_below_unigram -\d\.\d+ > 0\.0500 \(floor\)", result.stdout), result.stdout


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
    assert re.search(r"Trained \d+ steps \([\d.]+ epochs, [\d,]+ examples of \d+ training texts, [\d,]+ tokens; size small\)", page)
