"""Text-aware validation: each check finds its planted problem and nothing else; the gate policy."""

import dataclasses
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.types import standard_artifacts

from components.data import text_checks
from components.data.data_gate import DataValidationError, enforce
from components.data.text_profile import SplitText, nl_statistics, text_statistics, tokenize_texts, train_vocabulary
from components.data.text_schema_gen import mark_free_text
from components.data.text_validator import LatestPerSpanStrategy, Settings, comparator_schema, validate_text
from pipeline.config import ConfigError, load_config

WORDS = "the a film story actor scene plot music ending camera light dark good bad long short".split()


def split(name, texts, labels=None, tokenizer="word"):
    return SplitText(name, texts, labels, tokenize_texts(texts, tokenizer, False))


def sentences(count, words=12, offset=0):
    """Distinct texts of `words` words drawn from one small vocabulary."""
    return [" ".join(WORDS[(i * 7 + j * 3 + offset) % len(WORDS)] for j in range(words)) + f" number {i + offset}"
            for i in range(count)]


def settings(label_column=None, **limits):
    base = {"text_length_js": 0.25, "token_js": 0.1, "label_linf": 0.15}
    return Settings(text_column="text", label_column=label_column, tokenizer="word", lowercase=False,
                    max_vocab_size=1000, drift={**base, **limits}, skew={**base, **limits},
                    policy=dataclasses.asdict(load_config().validation.policy))


def text_schema(min_coverage=0.9, max_tokens=100):
    schema = schema_pb2.Schema()
    schema.feature.add(name="text", type=schema_pb2.BYTES)
    mark_free_text(schema, ["text"], min_coverage=min_coverage, max_tokens=max_tokens)
    return schema


def kinds(findings):
    return sorted((f.kind, f.split) for f in findings)


def test_clean_data_has_no_findings():
    train, evaluation = split("train", sentences(80)), split("eval", sentences(20, offset=80))
    findings, stats, context = validate_text({"train": train, "eval": evaluation}, None, text_schema(), settings())
    assert findings == []
    assert {m["feature"] for m in context["skew"]} == {"tokens_per_text", "token"}
    assert all(m["passed"] for m in context["skew"]) and context["drift"] == []
    nl = nl_statistics(stats["eval"], "text")
    assert nl.feature_coverage == pytest.approx(13 / 14)  # each eval text has one number train never shows
    assert nl.min_sequence_length == nl.max_sequence_length == 14


def test_each_planted_problem_is_found_once():
    train_texts = sentences(80)
    eval_texts = sentences(20, offset=80)
    eval_texts[3] = "   "  # empty
    eval_texts[5] = train_texts[10]  # leaked into eval
    eval_texts[7] = " ".join(["word"] * 150)  # over 100 tokens
    train_labels = ["pos", "neg"] * 40
    eval_labels = ["pos"] * 19 + ["neutral"]  # unseen label; "neg" missing from eval
    train = split("train", train_texts, train_labels)
    evaluation = split("eval", eval_texts, eval_labels)
    findings, _, _ = validate_text({"train": train, "eval": evaluation}, None, text_schema(min_coverage=0.5),
                                   settings("label", text_length_js=1.0, token_js=1.0, label_linf=1.0))
    assert kinds(findings) == [("duplicate_across_splits", "train/eval"), ("empty_text", "eval"),
                               ("missing_class", "eval"), ("text_too_long", "eval"), ("unseen_label", "eval")]
    by_kind = {f.kind: f for f in findings}
    assert by_kind["empty_text"].examples == ["eval example 4: '   '"]
    assert by_kind["duplicate_across_splits"].examples[0].startswith("eval example 6: ")
    assert "'neutral' (1 examples) never occurs in train" in by_kind["unseen_label"].explanation
    assert "'neg' (40 train examples) has no eval example" in by_kind["missing_class"].explanation
    assert by_kind["text_too_long"].value == 150 and by_kind["text_too_long"].limit == 100


def test_tokens_outside_the_train_vocabulary_are_found_by_tfdv_coverage():
    train = split("train", sentences(40))
    evaluation = split("eval", ["zebra quokka " * 6 + "the film"] * 10)
    findings, stats, _ = validate_text({"train": train, "eval": evaluation}, None, text_schema(), settings(token_js=1.0))
    (finding,) = [f for f in findings if f.kind == "out_of_vocabulary"]
    assert finding.split == "eval" and finding.limit == pytest.approx(0.9)
    assert finding.value == pytest.approx(2 / 14, abs=1e-3)
    assert "Fraction of tokens in the vocabulary" in finding.explanation  # TFDV's own words


def test_a_fine_tuning_run_measures_coverage_by_the_pushed_vocabulary(tmp_path):
    vocabulary_file = tmp_path / "tokens"
    vocabulary_file.write_text("\n".join(WORDS[:8]) + "\n", encoding="utf-8")  # half the words the texts use
    train, evaluation = split("train", sentences(40)), split("eval", sentences(10, offset=40))
    pushed = dataclasses.replace(settings(token_js=1.0), vocabulary_file=str(vocabulary_file),
                                 vocabulary_name="the vocabulary of textflow-rnn version 7")
    findings, stats, context = validate_text({"train": train, "eval": evaluation}, None, text_schema(), pushed)
    assert context["vocabulary_size"] == 8 and context["vocabulary"] == "the vocabulary of textflow-rnn version 7"
    uncovered = {f.split: f for f in findings if f.kind == "out_of_vocabulary"}
    assert set(uncovered) == {"train", "eval"}  # train too: its own words are not what the model reads
    assert "not in the vocabulary of textflow-rnn version 7" in uncovered["train"].explanation
    in_vocabulary = sum(t in WORDS[:8] for row in train.tokens for t in row) / sum(map(len, train.tokens))
    assert nl_statistics(stats["train"], "text").feature_coverage == pytest.approx(in_vocabulary)
    # without a pushed model, the train split's own vocabulary covers it
    own = validate_text({"train": train, "eval": evaluation}, None, text_schema(), settings(token_js=1.0))
    assert own[2]["vocabulary"] == "the train split's vocabulary"
    assert not [f for f in own[0] if f.kind == "out_of_vocabulary" and f.split == "train"]


def test_drift_against_the_previous_span_and_skew_between_splits():
    previous = split("train", sentences(80, words=5))
    train, evaluation = split("train", sentences(80, words=30)), split("eval", sentences(20, words=30, offset=80))
    findings, _, context = validate_text({"train": train, "eval": evaluation}, previous, text_schema(0.5, max_tokens=0),
                                         settings(), previous_span=1)
    assert kinds(findings) == [("drift", "train")]
    (drift,) = findings
    assert drift.feature == "tokens_per_text" and drift.value > 0.25
    assert "Jensen-Shannon divergence" in drift.explanation and "span 1's train split" in drift.explanation
    skewed = split("eval", sentences(20, words=5, offset=80))
    findings, _, _ = validate_text({"train": train, "eval": skewed}, None, text_schema(0.5, max_tokens=0), settings())
    assert {f.kind for f in findings} == {"skew"} and "tokens_per_text" in {f.feature for f in findings}


def test_label_shares_are_compared_with_l_infinity():
    schema = comparator_schema(settings("label"), "skew")
    assert schema.feature[2].skew_comparator.infinity_norm.threshold == pytest.approx(0.15)
    train = split("train", sentences(80), ["pos"] * 40 + ["neg"] * 40)
    evaluation = split("eval", sentences(20, offset=80), ["pos"] * 18 + ["neg"] * 2)
    findings, _, _ = validate_text({"train": train, "eval": evaluation}, None, text_schema(), settings("label"))
    (skew,) = findings
    assert (skew.kind, skew.feature) == ("skew", "label") and "L-infinity distance 0.400" in skew.explanation


def test_schema_findings_keep_real_anomalies_and_drop_missing_nl_stats_of_text():
    anomalies = anomalies_pb2.Anomalies()
    text = anomalies.anomaly_info["text"]
    text.reason.add(type=anomalies_pb2.AnomalyInfo.STATS_NOT_AVAILABLE, short_description="Natural language stats are not computed.")
    label = anomalies.anomaly_info["label"]
    label.reason.add(type=anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES, short_description="Unexpected string values",
                     description="Examples contain values missing from the schema: maybe (<1%).")
    (finding,) = text_checks.schema_findings({"eval": anomalies}, {"text"})
    assert (finding.kind, finding.split, finding.feature) == ("schema", "eval", "label")
    assert "maybe" in finding.explanation
    # An unseen_label finding on the same split and feature already says it, in the text checks' words.
    assert text_checks.schema_findings({"eval": anomalies}, {"text"}, {("eval", "label")}) == []


def test_findings_become_tfdv_anomalies_with_severity_from_the_policy():
    findings = [text_checks.Finding("empty_text", "eval", "text", "2 texts are empty", action="block"),
                text_checks.Finding("duplicate_across_splits", "train/eval", "text", "1 shared", action="warn")]
    train = text_checks.as_anomalies(findings, "train")
    assert list(train.anomaly_info) == ["text"] and train.anomaly_info["text"].severity == anomalies_pb2.AnomalyInfo.WARNING
    evaluation = text_checks.as_anomalies(findings, "eval")
    assert evaluation.anomaly_info["text"].severity == anomalies_pb2.AnomalyInfo.ERROR
    assert [r.short_description for r in evaluation.anomaly_info["text"].reason] == ["empty_text", "duplicate_across_splits"]


def test_the_gate_blocks_only_on_findings_whose_policy_is_block():
    warn = text_checks.Finding("drift", "train", "tokens_per_text", "JS 0.4", action="warn")
    enforce([warn])
    block = text_checks.Finding("empty_text", "eval", "text", "1 of 20 texts are empty", ["eval example 4: ''"], action="block")
    with pytest.raises(DataValidationError) as err:
        enforce([warn, block])
    message = str(err.value)
    assert "[block] empty_text, split 'eval', feature 'text': 1 of 20 texts are empty (e.g. eval example 4: '')" in message
    assert "drift" not in message.split("(each kind")[0]


def test_inferred_schema_carries_the_text_constraints():
    domain = text_schema(min_coverage=0.8, max_tokens=500).feature[0].natural_language_domain
    assert domain.coverage.min_coverage == pytest.approx(0.8)
    assert (domain.sequence_length_constraints.min_sequence_length, domain.sequence_length_constraints.max_sequence_length) == (1, 500)


def test_config_refuses_an_unknown_policy_and_limits_out_of_range():
    with pytest.raises(ConfigError, match="validation.policy.drift' must be 'block' or 'warn'"):
        load_config(overrides={"validation.policy.drift": "ignore"})
    with pytest.raises(ConfigError, match="validation.skew.token_js"):
        load_config(overrides={"validation.skew.token_js": 0})
    with pytest.raises(ConfigError, match="unseen_label' must be 'block': a classifier has no class"):
        load_config(overrides={"validation.policy.unseen_label": "warn"})
    assert load_config(overrides={"validation.policy.skew": "block"}).validation.policy.skew == "block"


def test_earlier_spans_resolve_to_each_spans_latest_examples():
    made = []
    for i, span in enumerate([1, 2, 1, 0, 2]):
        examples = standard_artifacts.Examples()
        examples.id = i
        examples.set_int_custom_property("span", span)  # where ExampleGen's driver records it
        made.append(examples)
    resolved = LatestPerSpanStrategy().resolve_artifacts(None, {"examples": made})["examples"]
    assert [(a.get_int_custom_property("span"), a.id) for a in resolved] == [(0, 3), (1, 2), (2, 4)]


def test_vocabulary_is_the_most_frequent_train_tokens():
    train = split("train", ["a a a b b c"])
    assert train_vocabulary(train, 2) == {"a", "b"}
    stats = text_statistics(split("eval", ["a b c d"]), "text", None, {"a", "b"})
    assert nl_statistics(stats, "text").feature_coverage == pytest.approx(0.5)


def test_a_target_column_is_checked_for_empty_long_and_unknown_texts_and_its_pairs():
    from components.data.text_validator import other_column_findings, pair_findings

    schema = schema_pb2.Schema()
    schema.feature.add(name="en", type=schema_pb2.BYTES)
    mark_free_text(schema, ["en"], min_coverage=0.9, max_tokens=20)
    sources = {"train": split("train", sentences(40, words=6)), "eval": split("eval", sentences(10, words=6, offset=40))}
    train_targets = sentences(40, words=6)
    eval_targets = ["", "zebra quokka " * 15] + [" ".join(["unheard", "of", "words"] * 2)] * 4 + sentences(4, words=6)
    eval_targets[9] = train_targets[0]  # with its source below: the same pair in both splits
    sources["eval"] = split("eval", sources["eval"].texts[:9] + [sources["train"].texts[0]])
    targets = {"train": split("train", train_targets), "eval": split("eval", eval_targets)}
    findings = other_column_findings(targets, "en", schema, settings())
    assert kinds(findings) == [("empty_text", "eval"), ("out_of_vocabulary", "eval"), ("text_too_long", "eval")]
    assert all(f.feature == "en" for f in findings)
    paired = pair_findings(sources, targets, "en", settings())
    assert [(f.kind, f.feature) for f in paired] == [("duplicate_across_splits", "text/en"), ("skew", "en/length_ratio")]
    same_ratios = {"train": targets["train"], "eval": split("eval", sentences(10, words=6, offset=40))}
    assert "skew" not in [f.kind for f in pair_findings(sources, same_ratios, "en", settings())]
