import math
import re

import pytest

from pipeline.cli import _overrides, _parser
from pipeline.config import ConfigError, data_path, load_config, schema_path
from models.families.rnn import RNNConfig


def test_default_config_loads_with_the_embedded_imdb_sample():
    config = load_config()
    assert config.models == ["rnn", "transformer", "hvae"] == config.trained_families
    assert config.data.format == "csv" and config.data.text_column == "text"
    assert data_path(config).endswith("imdb_small_with_labels.txt")
    assert isinstance(config.family_config("rnn"), RNNConfig)


def test_user_file_changes_only_its_keys(write):
    path = write("c.yaml", "data:\n  format: tsv\nrnn:\n  units: 32\n")
    config = load_config(path)
    assert config.data.format == "tsv"
    assert config.data.text_column == "text"  # from the default
    assert config.family_config("rnn").units == 32
    assert config.family_config("rnn").layers is None  # from the size, once the Trainer has counted the split
    assert config.family_config("rnn").sized(84).layers == 2 and config.family_config("rnn").sized(84).units == 32


@pytest.mark.parametrize(
    "text, key",
    [
        ("data:\n  text_colum: x\n", "data.text_colum"),
        ("bogus: 1\n", "bogus"),
        ("rnn:\n  unitz: 3\n", "rnn.unitz"),
        ("evaluation:\n  max_xent: 3\n", "evaluation.max_xent"),
    ],
)
def test_unknown_keys_are_refused_by_name(write, text, key):
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        load_config(write("c.yaml", text))


@pytest.mark.parametrize(
    "text, key",
    [
        ("rnn:\n  units: many\n", "rnn.units"),
        ("transform:\n  sequence_length: 1.5\n", "transform.sequence_length"),
        ("transform:\n  lowercase: 'yes'\n", "transform.lowercase"),
        ("models: rnn\n", "models"),
        ("data: [1, 2]\n", "data"),
        ("beam_args: [1]\n", r"beam_args\[0\]"),
    ],
)
def test_wrong_types_are_refused_by_name(write, text, key):
    with pytest.raises(ConfigError, match=f"config key '{key}' must be"):
        load_config(write("c.yaml", text))


def test_an_old_eval_percent_is_refused_with_what_replaced_it(write):
    with pytest.raises(ConfigError, match=r"'data.eval_percent' is no longer read: .*'data.validation_percent'.*"
                                          r"'data.test_percent'"):
        load_config(write("c.yaml", "data:\n  eval_percent: 20\n"))
    with pytest.raises(ConfigError, match="'data.eval_percent' is no longer read"):
        load_config(overrides={"data.eval_percent": 20})


@pytest.mark.parametrize("overrides, message", [
    ({"data.validation_percent": 0}, "'data.validation_percent' must be between 1 and 45, got 0"),
    ({"data.test_percent": 50}, "'data.test_percent' must be between 1 and 45, got 50"),
    ({"data.path": "d/span-{SPAN}/x.csv", "data.validation_path": "v.csv"}, "'data.validation_path' must both hold"),
])
def test_split_settings_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=overrides)


def test_ints_are_accepted_where_numbers_are_expected(write):
    config = load_config(write("c.yaml", "evaluation:\n  max_cross_entropy: 4\n"))
    assert config.evaluation.max_cross_entropy == 4.0


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="data.format"):
        load_config(overrides={"data.format": "xml"})
    with pytest.raises(ConfigError, match="unknown family 'gpt5'"):
        load_config(overrides={"models": ["gpt5"]})
    with pytest.raises(ConfigError, match="rnn.cell"):
        load_config(overrides={"rnn.cell": "transformer"})
    with pytest.raises(ConfigError, match="label_column"):
        load_config(overrides={"data.format": "txt", "data.label_column": "y"})
    with pytest.raises(ConfigError, match="evaluation.length_buckets"):
        load_config(overrides={"evaluation.length_buckets": [256, 64]})
    with pytest.raises(ConfigError, match="serving_check"):
        load_config(overrides={"serving_check.latency_requests": 0})


def test_unreadable_and_invalid_files_are_named(write, tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write("bad.yaml", "data: [\n"))


def test_cli_flags_and_set_override_the_file(write):
    path = write("c.yaml", "rnn:\n  units: 32\n")
    args = _parser().parse_args(
        ["run", "--config", path, "--data", "x.tsv", "--format", "tsv", "--text-column", "sentence",
         "--models", "rnn", "--workspace", "w", "--serving-dir", "s", "--sequence-length", "64",
         "--set", "rnn.units=48", "--set", "evaluation.max_increase=0.1"]
    )
    config = load_config(args.config, _overrides(args))
    assert config.data.path == "x.tsv" and config.data.format == "tsv"
    assert config.data.text_column == "sentence"
    assert config.transform.sequence_length == 64
    assert config.family_config("rnn").units == 48
    assert config.evaluation.max_increase == 0.1
    assert (config.workspace, config.serving_dir) == ("w", "s")


def test_transformer_context_must_cover_the_sequence_length():
    with pytest.raises(ConfigError, match="transformer.context"):
        load_config(overrides={"transform.sequence_length": 512})


def test_defaults_in_code_match_the_shipped_file():
    from models.families.transformer import TransformerConfig

    config = load_config()
    # the code's defaults are what a model built outside the pipeline gets: size small, float32
    # without XLA; the file's are auto (sized by the data; precision and XLA timed by the Trainer)
    file_only = dict(size="auto", precision="auto", jit_compile="auto")
    assert config.family_config("rnn") == RNNConfig(**file_only)
    assert config.family_config("transformer") == TransformerConfig(**file_only)
    assert config.family_config("rnn").sized(84) == RNNConfig(precision="auto", jit_compile="auto")


def test_schema_names_resolve_under_schemas():
    assert schema_path(load_config(overrides={"data.schema": "imdb"})).endswith("schemas/imdb/schema.pbtxt")
    with pytest.raises(ConfigError, match="data.schema"):
        schema_path(load_config(overrides={"data.schema": "nope"}))


def test_a_label_column_switches_to_classifier_branches_with_their_own_names():
    from pipeline.config import model_name
    from pipeline.pipeline import node_ids

    lm = load_config()
    assert lm.task == "language_model"
    assert model_name(lm, "rnn") == "textflow-rnn" and node_ids(lm, "rnn")["trainer"] == "Trainer_rnn"
    classifier = load_config(overrides={"data.label_column": "label"})
    assert classifier.task == "classifier"
    assert model_name(classifier, "rnn") == "textflow-rnn-classifier"
    assert node_ids(classifier, "transformer")["evaluator"] == "Evaluator_transformer_classifier"


def test_a_tag_column_makes_a_tagger_run_of_word_lists_with_its_own_branches():
    from pipeline.config import model_name
    from pipeline.evaluation import blessing_thresholds
    from pipeline.pipeline import node_ids

    config = load_config(overrides={"data.format": "conllu", "data.tag_column": "upos"})
    assert config.task == "tagger" and config.transform.tokenizer == "word"
    assert config.data.text_column == "tokens"  # CoNLL-U's words
    assert config.trained_families == ["rnn", "transformer"]  # hvae has no tagger
    assert model_name(config, "rnn") == "textflow-rnn-tagger"
    assert node_ids(config, "transformer")["evaluator"] == "Evaluator_transformer_tagger"
    assert [(t.metric, t.bound, t.floor) for t in blessing_thresholds(config, "rnn")] == [
        ("token_accuracy", 0.5, False), ("accuracy_above_baseline", 0.0, True)]
    jsonl = load_config(overrides={"data.format": "jsonl", "data.text_column": "words", "data.tag_column": "ner"})
    assert jsonl.task == "tagger" and jsonl.data.text_column == "words"


def test_a_target_column_makes_a_seq2seq_run_with_subwords_and_its_own_branches():
    from pipeline.config import model_name
    from pipeline.evaluation import blessing_thresholds
    from pipeline.pipeline import node_ids

    config = load_config(overrides={"data.format": "jsonl", "data.text_column": "de", "data.target_column": "en"})
    assert config.task == "seq2seq" and config.transform.tokenizer == "subword"
    assert config.trained_families == ["rnn", "transformer"]  # hvae has no encoder-decoder
    assert model_name(config, "transformer") == "textflow-transformer-seq2seq"
    assert node_ids(config, "rnn")["trainer"] == "Trainer_rnn_seq2seq"
    assert [(t.metric, t.bound, t.max_worsening) for t in blessing_thresholds(config, "rnn")] == [
        ("bleu", 1.0, 1.0), ("bleu_above_copy", 0.0, None), ("chrf_above_copy", 0.0, None),
        ("bleu_above_retrieval", 0.0, None), ("chrf_above_retrieval", 0.0, None)]
    question_answering = load_config(overrides={"data.format": "jsonl", "data.text_column": "question,context",
                                                "data.target_column": "answer"})
    assert question_answering.data.text_columns == ["question", "context"]
    denoise = load_config(overrides={"task": "denoise"})
    assert denoise.transform.tokenizer == "subword" and model_name(denoise, "rnn") == "textflow-rnn-denoise"
    assert [t.metric for t in blessing_thresholds(denoise, "rnn")] == ["chrf", "chrf_above_copy", "bleu_above_copy"]


@pytest.mark.parametrize("overrides, message", [
    ({"task": "seq2seq"}, "task 'seq2seq' needs config key 'data.target_column'"),
    ({"task": "classifier"}, "task 'classifier' needs config key 'data.label_column'"),
    ({"data.target_column": "en", "data.label_column": "label"}, "cannot both be set"),
    ({"task": "denoise", "data.target_column": "en"}, "task 'denoise' does not read it"),
    ({"data.text_column": "a,b"}, "joined into one source for task seq2seq only"),
    ({"data.text_column": "en", "data.target_column": "en"}, "must name different columns"),
    ({"data.target_column": "en", "transform.tokenizer": "char"}, "reads subword tokens"),
    ({"transform.tokenizer": "subword"}, "reads char or word tokens"),
    ({"task": "translate"}, "config key 'task' must be one of"),
    ({"task": "denoise", "denoise.mask_rate": 0.0}, "nothing to restore"),
    ({"data.target_column": "en", "transform.subword_vocab_size": 100}, "at least 300"),
    ({"data.target_column": "en", "transform.subword_vocab_size": "many"}, "must be auto or at least 300"),
    ({"data.format": "txt", "data.target_column": "en"}, "cannot be used with format txt"),
    ({"hvae.conductor_input": "tokens"}, "hvae.conductor_input must be one of zeros, z, got 'tokens'"),
    ({"task": "tagger"}, "task 'tagger' needs config key 'data.tag_column'"),
    ({"data.format": "conllu"}, "format conllu needs config key 'data.tag_column'"),
    ({"data.tag_column": "upos"}, "needs a format whose records hold token and tag lists .conllu or jsonl., got format csv"),
    ({"data.format": "jsonl", "data.tag_column": "tags", "data.label_column": "label"},
     "'data.label_column' and 'data.tag_column' cannot both be set"),
    ({"data.format": "conllu", "data.tag_column": "upos", "data.text_column": "form"},
     "a CoNLL-U file's words are the feature 'tokens'"),
    ({"data.format": "conllu", "data.tag_column": "upos", "tagger.spans": "bio"}, "tagger.spans must be auto, true or false"),
    ({"data.format": "conllu", "data.tag_column": "upos", "rnn.characters": "bilstm"},
     "rnn.characters must be one of cnn, lstm, got 'bilstm'"),
    ({"data.format": "conllu", "data.tag_column": "upos", "transform.tokenizer": "char"}, "reads word tokens"),
])
def test_task_and_column_mistakes_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def overall_threshold(metric_config):
    """The metric's threshold, which must judge the whole eval split only (not each slice)."""
    (per_slice,) = metric_config.per_slice_thresholds
    assert len(per_slice.slicing_specs) == 1 and not per_slice.slicing_specs[0].feature_keys
    assert not metric_config.HasField("threshold")
    return per_slice.threshold


def test_eval_config_carries_the_task_thresholds():
    from pipeline.evaluation import eval_config

    lm = eval_config(load_config(overrides={"evaluation.max_cross_entropy": 2.5}), "rnn")
    (spec,) = lm.model_specs
    assert not spec.label_key
    xent = {m.class_name: m for m in lm.metrics_specs[0].metrics}["CrossEntropyPerToken"]
    assert overall_threshold(xent).value_threshold.upper_bound.value == 2.5
    assert {m.class_name for m in lm.metrics_specs[0].metrics} == {
        "ExampleCount", "CrossEntropyPerToken", "Perplexity", "BitsPerToken", "TokenAccuracy",
        "UnigramCrossEntropy", "CrossEntropyBelowUnigram"}
    floor = {m.class_name: m for m in lm.metrics_specs[0].metrics}["CrossEntropyBelowUnigram"]
    assert overall_threshold(floor).value_threshold.lower_bound.value == math.nextafter(0.05, 1)  # strictly above
    assert [list(spec.feature_keys) for spec in lm.slicing_specs] == [[], ["length_bucket"]]

    config = load_config(overrides={"data.label_column": "label", "evaluation.min_accuracy": 0.7,
                                    "evaluation.max_accuracy_drop": 0.01})
    classifier = eval_config(config, "transformer")
    (spec,) = classifier.model_specs
    assert spec.label_key == "label_id" and list(spec.preprocessing_function_names) == ["transform_features"]
    metrics = {m.class_name: m for m in classifier.metrics_specs[0].metrics}
    assert set(metrics) == {"ExampleCount", "Accuracy", "AUC", "MacroPrecision", "MacroRecall",
                            "MajorityClassAccuracy", "AccuracyAboveChance"}
    assert overall_threshold(metrics["AccuracyAboveChance"]).value_threshold.lower_bound.value == math.nextafter(0, 1)
    accuracy = overall_threshold(metrics["Accuracy"])
    assert accuracy.value_threshold.lower_bound.value == 0.7
    assert accuracy.change_threshold.absolute.value == -0.01  # at most 0.01 below the baseline
    assert overall_threshold(metrics["AUC"]).value_threshold.lower_bound.value == math.nextafter(0.55, 1)  # the floor's AUC
    assert [list(spec.feature_keys) for spec in classifier.slicing_specs] == [[], ["length_bucket"], ["label"]]

    floor_off = load_config(overrides={"data.label_column": "label", "evaluation.require_beat_baseline": False})
    metrics = {m.class_name: m for m in eval_config(floor_off, "rnn").metrics_specs[0].metrics}
    assert not metrics["AccuracyAboveChance"].per_slice_thresholds  # computed, not required
    assert overall_threshold(metrics["AUC"]).value_threshold.lower_bound.value == 0.5


def test_a_word_language_model_has_no_cross_entropy_ceiling_unless_set():
    """3 nats per character is a ceiling; per word, nats depend on the vocabulary: the unigram
    floor and the change threshold judge a word model."""
    from pipeline.evaluation import blessing_thresholds, eval_config

    assert load_config().evaluation.max_cross_entropy == 3.0  # character tokens
    words = load_config(overrides={"transform.tokenizer": "word"})
    assert words.evaluation.max_cross_entropy is None
    xent = {m.class_name: m for m in eval_config(words, "rnn").metrics_specs[0].metrics}["CrossEntropyPerToken"]
    assert overall_threshold(xent).value_threshold.upper_bound.value == math.inf  # open: TFMA checks something
    assert overall_threshold(xent).change_threshold.absolute.value == 0.05
    assert [(t.metric, t.bound) for t in blessing_thresholds(words, "rnn")] == [
        ("cross_entropy_per_token", None), ("cross_entropy_below_unigram", 0.05)]
    set_one = load_config(overrides={"transform.tokenizer": "word", "evaluation.max_cross_entropy": 6})
    assert set_one.evaluation.max_cross_entropy == 6.0


def test_the_vae_is_evaluated_on_its_own_signature_and_metrics():
    from pipeline.evaluation import eval_config

    config = load_config(overrides={"evaluation.max_cross_entropy": 2.5, "evaluation.max_increase": 0.1})
    vae = eval_config(config, "hvae")
    (spec,) = vae.model_specs
    assert spec.signature_name == "evaluate"
    metrics = {m.class_name: m for m in vae.metrics_specs[0].metrics}
    assert set(metrics) == {"ExampleCount", "NegativeElboPerToken", "KLPerSequence", "ReconstructionAccuracy",
                            "SampledReconstructionAccuracy", "ActiveUnits", "UnigramCrossEntropy",
                            "NegativeElboBelowUnigram", "ShuffledZSampledAccuracy", "EditSimilarity",
                            "ShuffledZEditSimilarity", "ShuffledZNllGap"}
    assert overall_threshold(metrics["NegativeElboBelowUnigram"]).value_threshold.lower_bound.value == math.nextafter(0.05, 1)
    assert list(spec.preprocessing_function_names) == ["transform_features"]  # for the length_bucket slices
    nelbo = overall_threshold(metrics["NegativeElboPerToken"])
    assert nelbo.value_threshold.upper_bound.value == 2.5 and nelbo.change_threshold.absolute.value == 0.1


def test_classifier_mode_leaves_out_the_families_without_one():
    config = load_config(overrides={"data.label_column": "label"})
    assert config.models == ["rnn", "transformer", "hvae"] and config.trained_families == ["rnn", "transformer"]
    with pytest.raises(ConfigError, match="no family with a classifier mode"):
        load_config(overrides={"data.label_column": "label", "models": ["hvae"]})


def test_the_sequence_length_must_hold_whole_vae_segments():
    with pytest.raises(ConfigError, match=r"'transform.sequence_length' \(100\) must be a multiple of 'hvae.segment_length' \(16\)"):
        load_config(overrides={"transform.sequence_length": 100})
    assert load_config(overrides={"transform.sequence_length": 100, "models": ["rnn"]}).trained_families == ["rnn"]
    assert load_config(overrides={"transform.sequence_length": 100, "hvae.decoder": "flat"})


def test_classifier_thresholds_are_checked():
    with pytest.raises(ConfigError, match="min_accuracy, min_auc and baseline_min_auc"):
        load_config(overrides={"evaluation.min_auc": 1.5})


def test_a_classifier_reads_words_and_a_language_model_characters_unless_the_config_says():
    assert load_config().transform.tokenizer == "char"
    assert load_config(overrides={"data.label_column": "label"}).transform.tokenizer == "word"
    assert load_config(overrides={"data.label_column": "label", "transform.tokenizer": "char"}).transform.tokenizer == "char"


@pytest.mark.parametrize("overrides, message", [
    ({"transformer.width": 65}, r"at size small, which `size: auto` picks below 500,000 training tokens: "
                                r"transformer.width \(65\) must be a multiple of transformer.heads \(4\)"),
    # a translator may be sized large (8 heads), a language model of the same config not
    ({"data.target_column": "en", "transformer.width": 36}, r"at size large, which `size: auto` picks from "
                                                            r"400,000 training tokens: transformer.width \(36\)"),
    ({"transformer.heads": 3}, r"transformer.width \(64\) must be a multiple of transformer.heads \(3\)"),
    ({"transformer.size": "base", "transformer.width": 66}, r"transformer.width \(66\) must be a multiple"),
    ({"task": "denoise", "transformer.width": 65, "transformer.heads": 5}, r"must be even .*sinusoidal"),
    ({"transformer.pooling": "cls"}, r"transformer.pooling must be one of max, mean, got 'cls'"),
    ({"transformer.embedding_dropout": 1.0}, r"transformer.embedding_dropout must be in \[0, 1\), got 1.0"),
])
def test_a_setting_that_a_size_makes_invalid_is_refused_when_the_config_loads(overrides, message):
    """Size-governed settings stay null until the Trainer counts the data, so the config tries
    every size `auto` may pick: the mistake is found before anything trains."""
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_a_bad_size_governed_setting_exits_2_before_example_gen(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--set", "transformer.width=65",
                             "--workspace", str(tmp_path / "workspace"), "--serving-dir", str(tmp_path / "serving")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr and "transformer.heads (4)" in result.stderr
    assert "ExampleGen" not in result.stdout + result.stderr and not (tmp_path / "workspace").exists()


def test_the_task_fills_in_the_window_length_and_the_decoded_share_the_config_leaves_null():
    denoise = load_config(overrides={"task": "denoise"})
    assert (denoise.data.window_chars, denoise.evaluation.decode_examples) == (128, 300)
    default = load_config()
    assert (default.data.window_chars, default.evaluation.decode_examples) == (256, 1000)
    kept = load_config(overrides={"task": "denoise", "data.window_chars": 64, "evaluation.decode_examples": 50})
    assert (kept.data.window_chars, kept.evaluation.decode_examples) == (64, 50)
    # a run of the VAE alone takes its branch's shorter windows; beside the language models, theirs
    assert load_config(overrides={"models": ["hvae"]}).data.window_chars == 63
    assert load_config(overrides={"models": ["rnn", "hvae"]}).data.window_chars == 256
    assert load_config(overrides={"models": ["hvae"], "data.window_chars": 128}).data.window_chars == 128
