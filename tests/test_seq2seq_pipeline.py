"""Seq2seq through the CLI on a small sample of real pairs: the subword
vocabulary component, the encoder-decoder Trainers, BLEU/chrF in TFMA, the served signatures,
`predict`, and bad pairs stopping the run before anything is pushed."""

import glob
import json
import os

import pytest

from conftest import SHARED_DATA
from pipeline_args import FIXED_ACCELERATION
from test_end_to_end import only, run_in_fresh_process, textflow

from operations.results import overall_metrics, slice_metrics

pytestmark = pytest.mark.slow

TINY_SEQ2SEQ = [
    "--sequence-length", "48", "--set", "transform.subword_vocab_size=400",
    "--set", "rnn.units=32", "--set", "rnn.embedding_dim=16", "--set", "rnn.layers=1",
    "--set", "rnn.train_steps=20", "--set", "rnn.eval_steps=2", "--set", "rnn.batch_size=8",
    "--set", "transformer.layers=1", "--set", "transformer.width=32", "--set", "transformer.ff_width=64",
    "--set", "transformer.train_steps=20", "--set", "transformer.eval_steps=2", "--set", "transformer.batch_size=8",
    "--set", "transformer.warmup_steps=5", "--set", "evaluation.decode_examples=20",
    "--set", "serving_check.latency_requests=5",
    # 20 steps of tiny models translate nothing; the BLEU floor against copying has unit tests.
    "--set", "evaluation.min_bleu=0", "--set", "evaluation.require_beat_baseline=false",
]


def write_pairs(path, rows=300, mutate=None):
    """The first `rows` Multi30k pairs as JSON lines, each passed through `mutate` if given."""
    with open(SHARED_DATA / "multi30k" / "train.jsonl", encoding="utf-8") as f:
        pairs = [json.loads(line) for _, line in zip(range(rows), f)]
    with open(path, "w", encoding="utf-8") as f:
        for i, pair in enumerate(pairs):
            f.write(json.dumps(mutate(i, pair) if mutate else pair, ensure_ascii=False) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    data = write_pairs(root / "pairs.jsonl")
    args = ["run", *FIXED_ACCELERATION, "--data", data, "--format", "jsonl", "--text-column", "de", "--target-column", "en",
            "--workspace", "ws", "--serving-dir", "serving", *TINY_SEQ2SEQ]
    result = textflow(*args, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


def test_a_target_column_makes_a_seq2seq_run_of_both_encoder_decoders(translation_run):
    _, result = translation_run
    out = result.stdout
    assert "task seq2seq" in out and "source 'de' -> target 'en'" in out and "subword tokens" in out
    assert "hvae: no seq2seq mode, not trained" in out
    for component in ["SubwordVocabularyGen", "Transform", "Trainer_rnn_seq2seq", "Evaluator_rnn_seq2seq",
                      "ServingCheck_rnn_seq2seq", "Pusher_rnn_seq2seq", "Trainer_transformer_seq2seq",
                      "Evaluator_transformer_seq2seq", "ServingCheck_transformer_seq2seq", "Pusher_transformer_seq2seq"]:
        assert f"{component} started" in out and f"{component} finished in" in out, component
    assert "Trainer_hvae" not in out
    assert "rnn seq2seq (textflow-rnn-seq2seq" in out and "trivial baselines: copying the source, bleu" in out
    assert "the target of the nearest training pair (word TF-IDF of the source), bleu" in out


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_bleu_and_chrf_are_tfma_metrics_overall_and_per_source_length(translation_run, family):
    root, _ = translation_run
    evaluation = only(f"{root}/ws/artifacts/Evaluator_{family}_seq2seq/evaluation/*")
    overall, _ = overall_metrics(evaluation)
    for name in ("bleu", "chrf", "copy_bleu", "copy_chrf", "bleu_above_copy", "retrieval_bleu", "retrieval_chrf",
                 "bleu_above_retrieval", "chrf_above_retrieval", "cross_entropy_per_token",
                 "decoded_examples"):
        assert name in overall, (name, overall)
    assert 0 < overall["decoded_examples"] <= 60  # a hash sample of about 20 of the ~60 eval examples
    assert 0 <= overall["chrf"] <= 100 and overall["cross_entropy_per_token"] > 0
    assert overall["bleu_above_copy"] == pytest.approx(overall["bleu"] - overall["copy_bleu"], abs=1e-6)
    slices = slice_metrics(evaluation)
    assert any(name.startswith("length_bucket=") and "bleu" in values for name, values in slices.items()), slices


def test_the_pushed_translator_serves_every_signature_without_project_code(translation_run, tmp_path):
    root, _ = translation_run
    version_dir = only(f"{root}/serving/textflow-transformer-seq2seq/*")
    out = run_in_fresh_process(TRANSLATE_IN_FRESH_PROCESS, version_dir, tmp_path)
    assert out["signatures"] == ["attention", "evaluate", "serving_default", "transform_features", "translate"]
    assert len(out["translation"]) == 2 and all(isinstance(t, str) for t in out["translation"])
    assert out["alternatives_shape"] == [2, 3] and out["scores_sorted"]
    assert len(out["served"]) == 2 and all(isinstance(t, str) for t in out["served"])
    assert out["attention_rows_sum_to_one"] and out["pieces_match_attention"] and out["no_attention_on_padding"]
    assert not out["project_modules"]


def test_the_report_shows_bleu_by_source_length_samples_with_attention_and_training_curves(translation_run):
    root, result = translation_run
    import re

    page = open(re.search(r"Report: (\S+\.html)", result.stdout).group(1), encoding="utf-8").read()
    assert page.count("<h3>Training curve</h3>") == 2
    assert page.count("BLEU by source length (subword tokens)") == 2
    assert page.count('class="heatmap"') == 2 * 3  # evaluation.report_examples for each family
    assert "<th>source</th><th>reference</th><th>output</th>" in page


TRANSLATE_IN_FRESH_PROCESS = '''
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece op, as TensorFlow Serving links it in
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["translate"](source=tf.constant(["Ein Mann läuft.", "Zwei Hunde spielen im Schnee."]),
                                    beam_width=tf.constant(3), max_length=tf.constant(20))
example = tf.train.Example(features=tf.train.Features(feature={
    "de": tf.train.Feature(bytes_list=tf.train.BytesList(value=["Ein Kind.".encode(), b"Ein Hund."][:1]))}))
served = model.signatures["serving_default"](examples=tf.constant([example.SerializeToString()] * 2))
scores = out["alternative_scores"].numpy()
attended = model.signatures["attention"](source=tf.constant(["Ein Mann läuft.", "Zwei Hunde spielen im Schnee."]))
weights = attended["attention"].numpy()
source_real = (attended["source_pieces"].numpy() != b"<pad>")
written = attended["output_pieces"].numpy()
print(json.dumps({
    "signatures": sorted(model.signatures),
    "translation": [t.decode() for t in out["translation"].numpy()],
    "alternatives_shape": list(out["alternatives"].shape),
    "scores_sorted": bool((scores[:, :-1] >= scores[:, 1:]).all()),
    "served": [t.decode() for t in served["translation"].numpy()],
    "attention_rows_sum_to_one": bool(abs(weights.sum(-1) - 1).max() < 1e-3),
    "pieces_match_attention": list(weights.shape) == [2, written.shape[1], source_real.shape[1]],
    "no_attention_on_padding": bool(all((weights[b][:, ~source_real[b]] < 1e-6).all() for b in range(2))),
    "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("components", "models", "pipeline")),
}))
'''


def test_predict_prints_a_translation(translation_run):
    root, _ = translation_run
    result = textflow("predict", "textflow-rnn-seq2seq", "--text", "Ein Mann läuft.", "--workspace", "ws",
                      "--serving-dir", "serving", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "translate:" in result.stdout and "translation:" in result.stdout


@pytest.mark.parametrize("mutate, expected", [
    (lambda i, pair: {"de": pair["de"]} if i == 7 else pair, "line 8: no field 'en'"),
    (lambda i, pair: {**pair, "en": 42} if i == 3 else pair, "line 4: the target field 'en' must be a string"),
])
def test_bad_pairs_stop_the_run_with_the_line_and_push_nothing(tmp_path, mutate, expected):
    data = write_pairs(tmp_path / "pairs.jsonl", rows=40, mutate=mutate)
    result = textflow("run", *FIXED_ACCELERATION, "--data", data, "--format", "jsonl", "--text-column", "de", "--target-column", "en",
                      "--workspace", "ws", "--serving-dir", "serving", *TINY_SEQ2SEQ, cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    message = " ".join(result.stderr.split())  # the CLI wraps its paragraph
    assert expected in message and "Nothing was trained or pushed" in message
    assert not glob.glob(f"{tmp_path}/serving/*")


def test_an_empty_target_is_a_blocking_finding(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", rows=60, mutate=lambda i, pair: {**pair, "en": " "} if i == 5 else pair)
    result = textflow("run", *FIXED_ACCELERATION, "--data", data, "--format", "jsonl", "--text-column", "de", "--target-column", "en",
                      "--workspace", "ws", "--serving-dir", "serving", *TINY_SEQ2SEQ, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "empty_text" in message and "'en'" in message, message
    assert "SubwordVocabularyGen started" not in result.stdout
    assert not os.path.exists(tmp_path / "serving")
