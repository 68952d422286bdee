"""Tagging through the CLI on sentences of UD English EWT: a tiny tagger (with a CRF) learns a few
sentences exactly and gives their tags back through its exported `tag` signature in a fresh
process, and a tagger trained on shuffled tags (a softmax per word) is not blessed, its decision
naming the most-frequent-tag baseline."""

import random
import re
import textwrap
from pathlib import Path

import pytest

from components.data.conllu import read_sentences
from pipeline_args import FIXED_ACCELERATION
from test_end_to_end import only, run_in_fresh_process, textflow

pytestmark = pytest.mark.slow

EWT_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_en_ewt" / "train.conllu"
TINY_TAGGER = ["--models", "rnn", "--set", "rnn.size=small", "--set", "rnn.units=64", "--set", "rnn.layers=1",
               "--set", "rnn.eval_steps=2", "--set", "serving_check.latency_requests=10"]

TAG_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    sentences = json.loads(open("sentences.json").read())
    out = model.signatures["tag"](text=tf.constant([" ".join(words) for words in sentences]))
    rows = list(zip(out["tags"].numpy(), out["tag_probability"].numpy(), out["tokens"].numpy()))
    tags = [[t.decode() for t, w in zip(row, words) if w] for row, _, words in rows]
    probabilities = [[float(p) for p, w in zip(row, words) if w] for _, row, words in rows]
    print(json.dumps({"tags": tags, "probabilities": probabilities, "signatures": sorted(model.signatures)}))
    """
)


def ewt_sentences(count):
    with open(EWT_TRAIN, encoding="utf-8") as f:
        sentences = []
        for sentence in read_sentences(enumerate(f, start=1), str(EWT_TRAIN), "upos"):
            if all(" " not in word for word in sentence["tokens"]):  # the `tag` signature splits on spaces
                sentences.append((sentence["tokens"], sentence["upos"]))
            if len(sentences) == count:
                return sentences


def write_conllu(path, sentences):
    with open(path, "w", encoding="utf-8") as f:
        for words, tags in sentences:
            for i, (word, tag) in enumerate(zip(words, tags), start=1):
                f.write(f"{i}\t{word}\t_\t{tag}\t_\t_\t_\t_\t_\t_\n")
            f.write("\n")


def overall_metrics(evaluation_glob):
    import tensorflow_model_analysis as tfma

    (overall,) = [m for m in tfma.load_metrics(only(evaluation_glob)) if not m.slice_key.single_slice_keys]
    return {kv.key.name: kv.value.double_value.value for kv in overall.metric_keys_and_values}


def test_a_tiny_tagger_learns_a_few_sentences_and_serves_them(tmp_path):
    assert EWT_TRAIN.exists(), f"the shared data set is missing: {EWT_TRAIN}"
    sentences = ewt_sentences(12)
    write_conllu(tmp_path / "few.conllu", sentences)
    result = textflow("run", *FIXED_ACCELERATION, "--data", "few.conllu", "--validation-data", "few.conllu",
                      "--eval-data", "few.conllu", "--format", "conllu", "--tag-column", "upos", *TINY_TAGGER,
                      "--set", "rnn.train_steps=300", "--set", "rnn.batch_size=12", "--sequence-length", "64",
                      "--set", "rnn.crf=true",  # trained on the CRF's likelihood, Viterbi-decoded in TFMA and serving
                      # one validation batch holds every sentence in order (bucketed batches could leave
                      # some out), so the kept weights are those that tag all of them right
                      "--set", "training_data.batching=fixed", "--set", "rnn.eval_steps=1",
                      # the baseline knows these 12 sentences too (0.99): its floor has its own test below
                      "--set", "evaluation.require_beat_baseline=false",
                      "--workspace", "ws", "--serving-dir", "serving", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "task tagger" in result.stdout and "rnn tagger (textflow-rnn-tagger" in result.stdout
    assert "(the best token accuracy on validation, 1.0000; validation loss" in result.stdout  # how a tagger keeps weights
    values = overall_metrics(f"{tmp_path}/ws/artifacts/Evaluator_rnn_tagger/evaluation/*")
    assert values["token_accuracy"] == 1.0 and values["sentence_accuracy"] == 1.0, values
    assert values["most_frequent_tag_accuracy"] < 1.0  # a sentence's context tells what the word alone does not

    import json

    (tmp_path / "sentences.json").write_text(json.dumps([words for words, _ in sentences]))
    served = run_in_fresh_process(TAG_IN_FRESH_PROCESS, only(f"{tmp_path}/serving/textflow-rnn-tagger/*"), tmp_path)
    assert served["signatures"] == ["serving_default", "tag", "tag_tokens", "transform_features"]
    assert served["tags"] == [tags for _, tags in sentences]
    marginals = [p for row in served["probabilities"] for p in row]  # each word's marginal of its tag
    assert all(0.0 < p <= 1.0 + 1e-6 for p in marginals) and sum(marginals) / len(marginals) > 0.8


def test_a_tagger_of_shuffled_tags_is_not_blessed(tmp_path):
    sentences = ewt_sentences(300)
    tags = [tag for _, sentence_tags in sentences for tag in sentence_tags]
    random.Random(0).shuffle(tags)  # the words tell nothing of their tags any more
    shuffled, start = [], 0
    for words, _ in sentences:
        shuffled.append((words, tags[start:start + len(words)]))
        start += len(words)
    write_conllu(tmp_path / "shuffled.conllu", shuffled)
    result = textflow("run", *FIXED_ACCELERATION, "--data", "shuffled.conllu", "--format", "conllu",
                      "--tag-column", "upos", *TINY_TAGGER, "--set", "rnn.train_steps=60",
                      "--set", "evaluation.min_accuracy=0.0", "--workspace", "ws", "--serving-dir", "serving", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "NOT BLESSED" in out and "not pushed" in out, out
    assert re.search(r"FAIL: does not beat its trivial baseline \(most_frequent_tag_accuracy 0\.\d+\): "
                     r"accuracy_above_baseline -?\d\.\d+ > 0\.0000 \(floor\)", out), out
    assert "trivial baseline: each word's most frequent train tag" in out and "beating the stronger takes" in out
    assert not (tmp_path / "serving" / "textflow-rnn-tagger").exists()
