"""The blessing decision as a run keeps it: numbers and words for every threshold."""

from tasks.base import Threshold
from operations.run_record import decision_in_words, family_record
from operations.results import FamilyResult, ThresholdCheck

CROSS_ENTROPY = Threshold("cross_entropy_per_token", 3.0, False, 0.05)


def result(checks, blessed, serving_check=None, pushed_to=None, floor_on=True):
    return FamilyResult("rnn", "language_model", "textflow-rnn", {"cross_entropy_per_token": 2.9},
                        {"cross_entropy_per_token": 2.8}, checks, "trivial baseline: ...", floor_on, blessed, pushed_to,
                        {}, serving_check)


def test_a_failed_change_threshold_is_kept_with_candidate_baseline_and_limit():
    checks = [ThresholdCheck(CROSS_ENTROPY, "value", 2.9, True), ThresholdCheck(CROSS_ENTROPY, "change", 2.9, False, 2.8)]
    record = family_record(result(checks, blessed=False))
    value, change = record["thresholds"]
    assert value == {"metric": "cross_entropy_per_token", "kind": "value", "candidate": 2.9, "baseline": None,
                     "threshold": 3.0, "passed": True,
                     "explanation": "pass: cross_entropy_per_token 2.9000 <= 3.0000 (value threshold)"}
    assert (change["candidate"], change["baseline"], change["threshold"], change["passed"]) == (2.9, 2.8, 0.05, False)
    assert record["decision"] == (
        "not blessed: cross_entropy_per_token change +0.1000 vs baseline 2.8000 <= +0.0500 (change threshold); not pushed"
    )


def test_a_blessed_model_that_does_not_serve_says_why_it_was_not_pushed():
    checks = [ThresholdCheck(CROSS_ENTROPY, "value", 2.9, True)]
    found = {"blessed": False, "problems": ["signature 'generate': call failed: InvalidArgumentError: bad"]}
    assert decision_in_words(result(checks, blessed=True, serving_check=found)) == (
        "blessed: every threshold passed; serving check failed: signature 'generate': call failed: "
        "InvalidArgumentError: bad; not pushed"
    )
    served = result(checks, blessed=True, serving_check={"blessed": True, "problems": []}, pushed_to="/s/textflow-rnn/7")
    assert decision_in_words(served) == "blessed: every threshold passed; serving check passed; pushed to /s/textflow-rnn/7"


def test_a_model_under_its_trivial_baseline_is_named_in_words_and_the_floor_can_be_off():
    floor = Threshold("cross_entropy_below_unigram", 0.05, True, floor=True, trivial_metric="unigram_cross_entropy")
    checks = [ThresholdCheck(CROSS_ENTROPY, "value", 2.9, True),
              ThresholdCheck(floor, "value", 0.01, False, trivial=2.91)]
    record = family_record(result(checks, blessed=False))
    assert record["decision"] == (
        "not blessed: does not beat its trivial baseline (unigram_cross_entropy 2.9100): cross_entropy_below_unigram "
        "0.0100 > 0.0500 (floor); not pushed"
    )
    assert record["thresholds"][1]["kind"] == "floor" and record["baseline_floor"] == "on"
    off = family_record(result(checks[:1], blessed=True, floor_on=False))
    assert off["baseline_floor"] == "off"
    assert "the trivial-baseline floor was off" in off["decision"]


def test_the_summary_says_when_training_stopped_at_its_budget_and_on_how_many_tokens():
    from operations.summary import describe_training

    training = {"steps": 1500, "epochs": 8.24, "examples_seen": 192_000, "train_examples": 23_301,
                "train_tokens": 750_123, "size": "large", "best_step": 1500, "val_loss": 2.0123,
                "stopped_at_budget": True, "train_minutes": 30.0, "planned_steps": 1820, "stopped_early": True}
    [line] = describe_training(training)
    assert "23,301 training texts, 750,123 tokens; size large" in line
    assert "stopped at its 30-minute budget of 1,820 planned steps; kept the weights of step 1,500" in line
    [line] = describe_training({**training, "stopped_at_budget": False})
    assert "stopped early; kept" in line
