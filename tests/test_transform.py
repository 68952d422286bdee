"""The Transform preprocessing_fn, run on a few rows through tensorflow-transform's Beam API."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.training.transform_module import LABEL_VOCAB_NAME, VOCAB_NAME, preprocessing_fn, tokenize
from models.layers.tokens import BOS_ID, EOS_ID, NUM_RESERVED, PAD_ID

RAW_SPEC = {"text": tf.io.FixedLenFeature([1], tf.string)}
LABELLED_SPEC = {**RAW_SPEC, "label": tf.io.FixedLenFeature([1], tf.string)}


def run_transform(texts, labels=None, **settings):
    config = {"text_column": "text", "label_column": "label" if labels else None, "tokenizer": "char",
              "lowercase": False, "sequence_length": 8, "max_vocab_size": 100, **settings}
    spec = LABELLED_SPEC if labels else RAW_SPEC
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    rows = [{"text": [t.encode()]} for t in texts]
    for row, label in zip(rows, labels or []):
        row["label"] = [label.encode()]
    with tempfile.TemporaryDirectory() as temp, tft_beam.Context(temp_dir=temp):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, config)
        )
        out = tempfile.mkdtemp()
        transform_fn | tft_beam.WriteTransformFn(out)
    return transformed, tft.TFTransformOutput(out)


def decode(ids, vocabulary):
    return "".join(vocabulary[i - NUM_RESERVED] for i in ids if i >= NUM_RESERVED)


def test_lm_inputs_are_targets_shifted_right_with_bos_eos_and_padding():
    transformed, output = run_transform(["abca", "bb"])
    vocabulary = [t.decode() for t in output.vocabulary_by_name(VOCAB_NAME)]
    first, second = transformed
    assert first["input_ids"][0] == BOS_ID
    np.testing.assert_array_equal(first["input_ids"][1:5], first["target_ids"][:4])
    assert first["target_ids"][4] == EOS_ID
    assert decode(first["target_ids"], vocabulary) == "abca"
    assert list(second["target_ids"][3:]) == [PAD_ID] * 5
    assert (first["length"], second["length"]) == (5, 3)  # tokens + EOS
    assert vocabulary[0] == "b" and vocabulary[1] == "a"  # by frequency


def test_labels_become_class_ids_of_a_label_vocabulary():
    transformed, output = run_transform(["good", "bad", "fine", "meh"], labels=["pos", "neg", "pos", "neg"])
    classes = [c.decode() for c in output.vocabulary_by_name(LABEL_VOCAB_NAME)]
    assert sorted(classes) == ["neg", "pos"]
    assert [classes[row["label_id"]] for row in transformed] == ["pos", "neg", "pos", "neg"]
    assert "label_id" not in run_transform(["x"])[0][0]  # language-model mode: no label output


def test_long_texts_are_truncated_to_the_sequence_length():
    transformed, output = run_transform(["abcdefghijkl"])
    vocabulary = [t.decode() for t in output.vocabulary_by_name(VOCAB_NAME)]
    row = transformed[0]
    assert len(row["input_ids"]) == len(row["target_ids"]) == 8
    assert decode(row["target_ids"], vocabulary) == "abcdefgh"  # no EOS: the text goes on
    assert row["length"] == 8


def test_tokens_beyond_the_vocabulary_share_one_oov_id():
    transformed, output = run_transform(["aaab", "aac"], max_vocab_size=1)
    assert output.vocabulary_size_by_name(VOCAB_NAME) == 1
    oov = NUM_RESERVED + 1
    assert transformed[0]["target_ids"][3] == oov and transformed[1]["target_ids"][2] == oov


def test_word_tokenizer_splits_punctuation_and_lowercases():
    tokens = tokenize(tf.constant(["Hello, World! It's 2026 — café."]), "word", lowercase=True)
    assert [t.decode() for t in tokens[0].numpy()] == [
        "hello", ",", "world", "!", "it", "'", "s", "2026", "—", "café", "."
    ]


def test_char_tokenizer_splits_unicode_characters():
    tokens = tokenize(tf.constant(["né"]), "char", lowercase=False)
    assert [t.decode() for t in tokens[0].numpy()] == ["n", "é"]


def test_char_tokenizer_keeps_line_breaks_as_a_vocabulary_symbol():
    tokens = tokenize(tf.constant(["a\nb\r\nc"]), "char", lowercase=False)
    assert [t.decode() for t in tokens[0].numpy()] == ["a", "\u2424", "b", "\u2424", "c"]


def test_texts_are_bucketed_by_their_length_before_truncation():
    transformed, _ = run_transform(["ab", "abcde", "abcdefghijklmnop"], length_buckets=[3, 10])
    assert [row["length_bucket"] for row in transformed] == [b"0-2 tokens", b"3-9 tokens", b"10+ tokens"]
    assert transformed[2]["length"] == 8  # the model sees the truncated text; the bucket says how long it was


def test_unknown_tokenizer_is_refused():
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenize(tf.constant(["x"]), "bpe", lowercase=False)


def test_unigram_log_likelihood_is_the_add_one_unigram_model_of_the_analyzed_tokens():
    # "abca" + EOS and "bb" + EOS: a 2, b 3, c 1, EOS 2 -> N = 8 tokens, K = 4 seen ids + 1 unseen slot.
    transformed, output = run_transform(["abca", "bb"])
    p = {"a": 3 / 13, "b": 4 / 13, "c": 2 / 13, "eos": 3 / 13}
    expected_first = 2 * np.log(p["a"]) + np.log(p["b"]) + np.log(p["c"]) + np.log(p["eos"])
    expected_second = 2 * np.log(p["b"]) + np.log(p["eos"])
    got = [row["unigram_log_likelihood"] for row in transformed]
    np.testing.assert_allclose(got, [expected_first, expected_second], rtol=1e-5)
    # An unseen token (OOV) gets the unseen slot, 1 / 13, through the saved transform graph.
    raw = {"text": tf.constant([["z"]])}
    unseen = output.transform_raw_features(raw)["unigram_log_likelihood"].numpy()[0]
    np.testing.assert_allclose(unseen, np.log(1 / 13) + np.log(p["eos"]), rtol=1e-5)


def test_a_given_vocabulary_is_taken_whole_and_travels_with_the_graph(tmp_path):
    """Fine-tuning reads a pre-trained model's vocabulary: its ids, whatever the new texts' counts,
    an unknown token the OOV id, and the file a part of the Transform graph."""
    import os

    vocabulary_file = tmp_path / "tokens"
    vocabulary_file.write_text("z\na\nb\n")
    transformed, output = run_transform(["abq", "bb"], vocabulary_file=str(vocabulary_file), max_vocab_size=3)
    assert [t.decode() for t in output.vocabulary_by_name(VOCAB_NAME)] == ["z", "a", "b"]
    assert list(transformed[0]["target_ids"][:3]) == [NUM_RESERVED + 1, NUM_RESERVED + 2, NUM_RESERVED + 3]  # q: OOV
    os.remove(vocabulary_file)  # the graph keeps its own copy
    again = output.transform_raw_features({"text": tf.constant([["za"]])})
    assert list(again["target_ids"].numpy()[0][:2]) == [NUM_RESERVED, NUM_RESERVED + 1]
