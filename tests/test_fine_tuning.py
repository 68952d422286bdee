"""Pre-train once, fine-tune: a transformer language model pushed by one run starts the next run's
classifier (`--init-from`). ML Metadata holds the pushed model as the Trainer's input, the summary
says what was loaded, the fine-tuned model serves, and mistakes are refused before anything runs."""

import glob
import json
import re
from pathlib import Path

import pytest

from components.training.model_description import read_description
from pipeline_args import FIXED_ACCELERATION
from test_end_to_end import only, textflow
from test_tagger_pipeline import ewt_sentences, write_conllu

pytestmark = pytest.mark.slow

SST2_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2_train.tsv"
SMALL_TRANSFORMER = [
    "--models", "transformer", "--sequence-length", "64", "--set", "transformer.layers=1",
    "--set", "transformer.width=32", "--set", "transformer.ff_width=64", "--set", "transformer.context=64",
    "--set", "transformer.train_steps=30", "--set", "transformer.eval_steps=2", "--set", "transformer.batch_size=8",
    "--set", "transformer.warmup_steps=5", "--set", "evaluation.require_beat_baseline=false",
    "--set", "evaluation.min_accuracy=0.0",
    "--data", "sst.tsv", "--format", "tsv", "--text-column", "sentence", "--workspace", "ws", "--serving-dir", "serving",
    *FIXED_ACCELERATION,
]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A word-level transformer language model of 300 SST-2 training sentences, pushed."""
    assert SST2_TRAIN.exists(), f"the shared data set is missing: {SST2_TRAIN}"
    root = tmp_path_factory.mktemp("fine_tuning")
    with open(SST2_TRAIN, encoding="utf-8") as f:
        (root / "sst.tsv").write_text("".join(f.readlines()[:301]), encoding="utf-8")
    result = textflow("run", *SMALL_TRANSFORMER, "--tokenizer", "word", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_a_classifier_starts_from_a_pushed_language_model(pretrained):
    root = pretrained
    lm_dir = only(f"{root}/serving/textflow-transformer/*")
    version = Path(lm_dir).name
    result = textflow("run", *SMALL_TRANSFORMER, "--label-column", "label", "--init-from", "textflow-transformer", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"transformer starts from textflow-transformer version {version}" in result.stdout
    assert re.search(rf"initialised from textflow-transformer version {version} \(its language_model, trained on "
                     r"[\d,]+ texts\): loaded embedding, block_0, final_norm; new class_logits; the loaded layers "
                     r"at 1x the learning rate", result.stdout), result.stdout
    assert "serving check passed" in result.stdout
    classifier_dir = only(f"{root}/serving/textflow-transformer-classifier/*")
    described = read_description(classifier_dir)
    assert described["kind"] == "classifier" and described["initialised_from"]["path"] == lm_dir
    # ML Metadata: the pushed language model is an input of the classifier's Trainer
    shown = textflow("models", "show", "textflow-transformer-classifier", Path(classifier_dir).name,
                     "--workspace", "ws", "--serving-dir", "serving", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert f"base_model: {lm_dir}" in shown.stdout
    assert f"initialised from textflow-transformer version {version} (its language_model" in shown.stdout
    report = textflow("report", "--workspace", "ws", "--format", "md", cwd=root)
    assert report.returncode == 0, report.stderr
    assert f"Initialised from textflow-transformer version {version}" in report.stdout
    # the Transform tokenized with the language model's vocabulary, taken whole
    graphs = glob.glob(f"{root}/ws/artifacts/Transform/transform_graph/*/transform_fn/assets/tokens")
    latest = max(graphs, key=lambda path: int(Path(path).parents[2].name))  # the fine-tuning run's
    assert Path(latest).read_bytes() == (Path(lm_dir) / "assets" / "tokens").read_bytes()
    metrics = json.loads(Path(only(f"{root}/ws/artifacts/Trainer_transformer_classifier/model_run/*/training_metrics.json"))
                         .read_text())
    assert metrics["initialised_from"]["new_layers"] == ["class_logits"] and metrics["precision"] == "float32"


@pytest.mark.parametrize("extra, message", [
    (["--label-column", "label", "--init-from", "nosuch"], "training.init_from 'nosuch': no served model 'nosuch'"),
    (["--label-column", "label", "--init-from", "textflow-transformer", "--tokenizer", "char"],
     "reads word tokens; this run reads char tokens"),
    (["--label-column", "label", "--init-from", "textflow-transformer@canary"], "has no 'canary' label"),
    (["--init-from", "textflow-transformer", "--tokenizer", "word"], "a language_model cannot start from a language_model"),
    (["--label-column", "label", "--init-from", "textflow-transformer", "--models", "rnn"],
     "this run does not train the transformer family"),
    (["--format", "jsonl", "--text-column", "words", "--tag-column", "tags", "--init-from", "textflow-transformer"],
     "reads at most 64 positions (its context); this run's tagger gives it 65 (transform.sequence_length 64): "
     "set --sequence-length 63"),
])
def test_a_start_that_cannot_work_is_refused_before_anything_runs(pretrained, extra, message):
    result = textflow("run", *SMALL_TRANSFORMER, *extra, cwd=pretrained)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "started" not in result.stdout  # no component ran


def test_a_tagger_starts_from_a_pushed_language_model(pretrained):
    """The word language model's state of each word, beside a new character view: the tagger
    trains, tokenizes with the language model's vocabulary (the checks measure UD's coverage by
    it) and serves its `tag` signature."""
    root = pretrained
    write_conllu(root / "ud.conllu", ewt_sentences(120))
    result = textflow("run", "--data", "ud.conllu", "--format", "conllu", "--tag-column", "upos", "--models", "transformer",
                      "--init-from", "textflow-transformer", "--sequence-length", "63", "--set", "transformer.train_steps=30",
                      "--set", "transformer.eval_steps=2", "--set", "transformer.batch_size=8",
                      "--set", "evaluation.min_accuracy=0.0", "--set", "evaluation.require_beat_baseline=false",
                      "--set", "serving_check.latency_requests=5", "--workspace", "ws_tagger", "--serving-dir", "serving",
                      *FIXED_ACCELERATION, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"initialised from textflow-transformer version \d+ \(its language_model, trained on [\d,]+ "
                     r"texts\): loaded word_states; new characters, tag_logits", result.stdout), result.stdout
    assert "not in the vocabulary of textflow-transformer version" in result.stdout  # SST-2's words cover UD's partly
    assert "serving check passed" in result.stdout
    assert only(f"{root}/serving/textflow-transformer-tagger/*")
