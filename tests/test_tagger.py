"""The tagger's parts: its Transform (word ids, characters, tag ids, the most-frequent-tag
baseline), its metrics against a reference computation, and padding that never changes a tag."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.evaluation import tagger_metrics as metrics
from components.training.tagger_transform import BASELINE_TAG_FEATURE, CHAR_FEATURE, SEEN_FEATURE, TAG_FEATURE
from components.training.transform_module import LABEL_VOCAB_NAME, VOCAB_NAME, preprocessing_fn
from models import registry
from models.layers.tokens import NUM_RESERVED

SPEC = {"tokens": tf.io.VarLenFeature(tf.string), "upos": tf.io.VarLenFeature(tf.string)}
TRAIN = [(["the", "dog", "runs"], ["DET", "NOUN", "VERB"]),
         (["the", "runs", "end"], ["DET", "NOUN", "NOUN"]),
         (["dogs", "run"], ["NOUN", "VERB"]),
         (["a", "run"], ["DET", "NOUN"])]


def run_transform(sentences, sequence_length=6, max_word_chars=4):
    config = {"text_column": "tokens", "tag_column": "upos", "label_column": None, "tokenizer": "word",
              "lowercase": False, "sequence_length": sequence_length, "max_vocab_size": 100,
              "max_word_chars": max_word_chars, "length_buckets": [3]}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
    rows = [{"tokens": [w.encode() for w in words], "upos": [t.encode() for t in tags]} for words, tags in sentences]
    with tempfile.TemporaryDirectory() as temp, tft_beam.Context(temp_dir=temp):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, config))
        out = tempfile.mkdtemp()
        transform_fn | tft_beam.WriteTransformFn(out)
    return transformed, tft.TFTransformOutput(out)


@pytest.fixture(scope="module")
def transformed():
    return run_transform(TRAIN)


def test_tag_ids_and_the_most_frequent_train_tag_of_each_word(transformed):
    rows, output = transformed
    tags = [t.decode() for t in output.vocabulary_by_name(LABEL_VOCAB_NAME)]
    assert tags[0] == "NOUN"  # the most frequent tag first: the baseline's answer for an unseen word
    first, second = rows[0], rows[1]
    assert [tags[i] for i in first[TAG_FEATURE][:3]] == ["DET", "NOUN", "VERB"] and list(first[TAG_FEATURE][3:]) == [-1] * 3
    # "runs": VERB once, NOUN once -> the tie goes to the more frequent tag, NOUN; "the": DET twice
    assert [tags[i] for i in first[BASELINE_TAG_FEATURE][:3]] == ["DET", "NOUN", "NOUN"]
    assert [tags[i] for i in second[BASELINE_TAG_FEATURE][:3]] == ["DET", "NOUN", "NOUN"]
    assert list(first[SEEN_FEATURE]) == [1, 1, 1, -1, -1, -1]
    words = [w.decode() for w in output.vocabulary_by_name(VOCAB_NAME)]
    assert [words[i - NUM_RESERVED] for i in first["input_ids"][:3]] == ["the", "dog", "runs"]
    assert list(first["input_ids"][3:]) == [0, 0, 0] and first["length"] == 3
    assert first["length_bucket"] == b"3+ tokens" and rows[2]["length_bucket"] == b"0-2 tokens"


def test_each_word_keeps_its_characters_its_first_and_last_halves_when_long(transformed):
    rows, output = transformed
    characters = [c.decode() for c in output.vocabulary_by_name("characters")]
    spelled = ["".join(characters[i - NUM_RESERVED] for i in word if i) for word in rows[0][CHAR_FEATURE]]
    assert spelled[:3] == ["the", "dog", "runs"] and spelled[3:] == ["", "", ""]
    long_rows, long_output = run_transform([(["abcdefgh"], ["X"]), (["b"], ["Y"])], max_word_chars=4)
    characters = [c.decode() for c in long_output.vocabulary_by_name("characters")]
    assert "".join(characters[i - NUM_RESERVED] for i in long_rows[0][CHAR_FEATURE][0]) == "abgh"


def test_an_unseen_word_gets_the_most_frequent_tag_and_is_not_seen():
    transform_dir = run_transform(TRAIN)[1]
    layer = transform_dir.transform_features_layer()
    raw = {"tokens": tf.sparse.from_dense(tf.constant([["the", "zebra"]])),
           "upos": tf.sparse.from_dense(tf.constant([["DET", "NOUN"]]))}
    out = layer(raw)
    assert list(out[SEEN_FEATURE].numpy()[0][:2]) == [1, 0]
    assert out[BASELINE_TAG_FEATURE].numpy()[0][1] == 0  # NOUN, the most frequent tag


def reference(gold, predicted, baseline, seen):
    """Every tagger metric computed word by word in plain Python, from lists of sentences."""
    pairs = [(g, p, b, s) for gs, ps, bs, ss in zip(gold, predicted, baseline, seen) for g, p, b, s in zip(gs, ps, bs, ss) if g >= 0]
    tags = sorted({g for g, *_ in pairs} | {p for _, p, *_ in pairs})
    f1 = []
    for tag in tags:
        tp = sum(g == tag and p == tag for g, p, *_ in pairs)
        fp = sum(g != tag and p == tag for g, p, *_ in pairs)
        fn = sum(g == tag and p != tag for g, p, *_ in pairs)
        f1.append(2 * tp / (2 * tp + fp + fn))
    seen_pairs = [(g, p) for g, p, _, s in pairs if s]
    unseen_pairs = [(g, p) for g, p, _, s in pairs if not s]
    return {
        "token_accuracy": sum(g == p for g, p, *_ in pairs) / len(pairs),
        "macro_f1": sum(f1) / len(f1),
        "sentence_accuracy": sum(all(g == p for g, p in zip(gs, ps) if g >= 0) for gs, ps in zip(gold, predicted)) / len(gold),
        "seen_word_accuracy": sum(g == p for g, p in seen_pairs) / len(seen_pairs),
        "unseen_word_accuracy": sum(g == p for g, p in unseen_pairs) / len(unseen_pairs),
        "most_frequent_tag_accuracy": sum(g == b for g, _, b, _ in pairs) / len(pairs),
        "majority_tag_accuracy": sum(g == 0 for g, *_ in pairs) / len(pairs),  # tag 0: train's most frequent
    }


TAG_NAMES = ["NOUN", "VERB", "DET", "ADJ"]


def names(ids):
    return [TAG_NAMES[i] if i >= 0 else "" for i in ids]


def test_the_metrics_equal_a_reference_computation():
    gold = [[0, 1, 2, -1], [1, 1, 0, 3], [2, 0, -1, -1]]
    predicted = [[0, 2, 2, -1], [1, 1, 0, 3], [2, 1, -1, -1]]
    baseline = [[0, 1, 1, -1], [1, 0, 0, 0], [0, 0, -1, -1]]
    seen = [[1, 1, 0, -1], [1, 1, 1, 0], [1, 0, -1, -1]]
    counts = metrics.TagCounts()
    for row in zip(gold, predicted, baseline, seen):
        counts.add(*(np.array(values) for values in row), *(names(values) for values in row[:2]))
    expected = reference(gold, predicted, baseline, seen)
    for name, value in expected.items():
        assert getattr(metrics, name)(counts) == pytest.approx(value), name
    words, stronger = 9, max(expected["most_frequent_tag_accuracy"], expected["majority_tag_accuracy"])
    floor = stronger + 2 * np.sqrt(stronger * (1 - stronger) / words)
    assert metrics.accuracy_above_baseline(counts) == pytest.approx(expected["token_accuracy"] - floor)
    merged = metrics.TagCounts()
    for half in (slice(0, 1), slice(1, 3)):
        part = metrics.TagCounts()
        for row in zip(gold[half], predicted[half], baseline[half], seen[half]):
            part.add(*(np.array(values) for values in row), *(names(values) for values in row[:2]))
        merged.merge(part)
    assert metrics.macro_f1(merged) == pytest.approx(expected["macro_f1"])
    scores = metrics.per_tag_scores(counts)
    assert scores["tag/VERB/support"] == 3 and scores["tag/VERB/precision"] == pytest.approx(2 / 3)
    assert scores["tag/VERB/recall"] == pytest.approx(2 / 3) and scores["confusion/VERB/DET"] == 1
    assert scores["confusion/NOUN/VERB"] == 1 and "confusion/NOUN/DET" not in scores
    assert np.isnan(metrics.span_f1(counts))  # not a BIO tag set
    # where words tell nothing of their tags, always answering the most frequent tag is the stronger baseline
    shuffled = metrics.TagCounts()
    shuffled.add(np.array([0, 0, 0, 1]), np.array([1, 1, 1, 1]), np.array([2, 1, 2, 1]), np.ones(4), names([0, 0, 0, 1]),
                 names([1, 1, 1, 1]))
    assert metrics.most_frequent_tag_accuracy(shuffled) == 0.25 and metrics.majority_tag_accuracy(shuffled) == 0.75
    assert metrics.accuracy_above_baseline(shuffled) == pytest.approx(0.25 - (0.75 + 2 * np.sqrt(0.75 * 0.25 / 4)))


@pytest.mark.parametrize("family,characters", [("rnn", "cnn"), ("transformer", "cnn"), ("rnn", "lstm")])
def test_padding_never_changes_a_real_words_tag(family, characters):
    config = registry.get(family).config_class(size="small", characters=characters)
    model = registry.build_model(family, "tagger", config, vocab_size=50, num_classes=6)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50, size=(2, 5))
    ids[1, 3:] = 0  # the second sentence has 3 words
    chars = rng.integers(3, 40, size=(2, 5, 4))
    chars[ids == 0] = 0
    logits = model({"input_ids": ids, "char_ids": chars}, training=False).numpy()
    padded_ids = np.pad(ids, [[0, 0], [0, 7]])
    padded_chars = np.pad(chars, [[0, 0], [0, 7], [0, 3]])
    padded = model({"input_ids": padded_ids, "char_ids": padded_chars}, training=False).numpy()
    np.testing.assert_allclose(padded[0, :5], logits[0, :5], atol=1e-5)
    np.testing.assert_allclose(padded[1, :3], logits[1, :3], atol=1e-5)
    alone = model({"input_ids": ids[1:, :3], "char_ids": chars[1:, :3]}, training=False).numpy()
    np.testing.assert_allclose(alone[0], logits[1, :3], atol=1e-5)


def test_span_f1_counts_spans_as_conlleval_does():
    """conlleval's rules: a span starts at B-X, or at I-X after O or after a span of another type
    (so a lone I-LOC is a LOC span, and I-ORG after B-MISC ends MISC and starts ORG), and it is
    right only when start, end and type all match."""
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
    # a span opened by I- after O (conlleval starts one there), a type change inside a span, a miss
    predicted = [["B-PER", "I-PER", "O", "I-LOC"], ["B-ORG", "O", "B-MISC", "I-ORG"]]
    assert metrics.spans(gold[0]) == {(0, 2, "PER"), (3, 4, "LOC")}
    assert metrics.spans(predicted[0]) == {(0, 2, "PER"), (3, 4, "LOC")}
    assert metrics.spans(predicted[1]) == {(0, 1, "ORG"), (2, 3, "MISC"), (3, 4, "ORG")}
    ids = {t: i for i, t in enumerate(sorted({t for row in gold + predicted for t in row}))}
    counts = metrics.TagCounts()
    for g, p in zip(gold, predicted):
        counts.add(np.array([ids[t] for t in g]), np.array([ids[t] for t in p]), np.zeros(4, np.int64),
                   np.ones(4, np.int64), g, p)
    # 4 gold spans, 5 predicted, 3 right (PER, LOC, ORG): precision 3/5, recall 3/4, F1 = 2*3/(4+5)
    assert metrics.span_f1(counts) == pytest.approx(6 / 9)
    assert metrics.span_f1(counts, spans=True) == pytest.approx(6 / 9) and np.isnan(metrics.span_f1(counts, spans=False))
    # a tag without a B-/I- prefix: auto takes the set for no span tags; true counts it as outside, as conlleval does
    counts.add(np.array([ids["B-PER"], 9]), np.array([ids["B-PER"], 9]), np.zeros(2, np.int64), np.ones(2, np.int64),
               ["B-PER", "NUM"], ["B-PER", "NUM"])
    assert np.isnan(metrics.span_f1(counts)) and metrics.span_f1(counts, spans=True) == pytest.approx(8 / 11)


@pytest.mark.parametrize("spans", [True, False, "auto"])
def test_the_spans_setting_reaches_the_evaluators_span_f1(spans):
    from tensorflow_model_analysis.metrics import metric_specs

    from pipeline.config import config_from_dict
    from pipeline.evaluation import eval_config

    config = config_from_dict({"data": {"format": "conllu", "tag_column": "upos"}, "tagger": {"spans": spans}})
    built = {m.class_name: m for m in eval_config(config, "rnn").metrics_specs[0].metrics}
    assert ("SpanF1" in built) == (spans is not False) and "TokenAccuracy" in built
    if spans is not False:
        assert metric_specs.metric_instance(built["SpanF1"]).get_config()["spans"] == spans


def test_the_report_shows_each_tag_and_the_confusions_from_the_evaluators_metrics():
    from tasks.document import Heatmap, Table
    from tasks.tagger import TASK

    metrics = {"token_accuracy": 0.75, "tag/NOUN/precision": 0.8, "tag/NOUN/recall": 1.0, "tag/NOUN/f1": 0.8889,
               "tag/NOUN/support": 4.0, "tag/VERB/precision": 1.0, "tag/VERB/recall": 0.5, "tag/VERB/f1": 0.6667,
               "tag/VERB/support": 2.0, "confusion/NOUN/NOUN": 4.0, "confusion/VERB/VERB": 1.0, "confusion/VERB/NOUN": 1.0}
    blocks = TASK.report_blocks({"metrics": metrics, "samples": [
        {"tokens": ["dogs", "run"], "gold": ["NOUN", "VERB"], "predicted": ["NOUN", "NOUN"]}]})
    per_tag, heatmap, mistakes = [b for b in blocks if not isinstance(b, str)][:3]
    assert per_tag.rows[0] == ["NOUN", "0.8000", "1", "0.8889", "4"]  # the most frequent tag first
    assert isinstance(heatmap, Heatmap) and heatmap.weights == [[1.0, 0.0], [0.5, 0.5]]
    assert mistakes.rows == [["VERB", "NOUN", "1"]]
    samples = [b for b in blocks if isinstance(b, Table)][-1]
    assert samples.rows == [["dogs/NOUN run/NOUN[gold VERB]", "1/2"]]
