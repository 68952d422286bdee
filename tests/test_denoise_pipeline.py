"""Denoising through the CLI on plain text (Tiny Shakespeare windows): an encoder-decoder learns to
restore corrupted text, judged against copying the corrupted input."""

import glob
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from test_end_to_end import only, textflow
from test_seq2seq_pipeline import TINY_SEQ2SEQ, write_pairs

from components.training.model_description import read_description
from operations.results import overall_metrics
from pipeline_args import FIXED_ACCELERATION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def denoising_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("denoise")
    with open(SHARED_DATA / "tinyshakespeare.txt", encoding="utf-8") as f:
        (root / "shakespeare.txt").write_text(f.read(30_000), encoding="utf-8")
    args = ["run", *FIXED_ACCELERATION, "--data", "shakespeare.txt", "--format", "txt", "--set", "data.txt_mode=windows",
            "--set", "data.window_chars=96", "--task", "denoise", "--models", "rnn",
            "--workspace", "ws", "--serving-dir", "serving", *TINY_SEQ2SEQ, "--set", "evaluation.min_chrf=0"]
    result = textflow(*args, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


def test_denoising_trains_on_plain_text_against_the_copy_of_the_corrupted_input(denoising_run):
    root, result = denoising_run
    out = result.stdout
    assert "task denoise" in out and "Trainer_rnn_denoise finished" in out
    assert "trivial baseline: copying the corrupted input, chrf" in out
    evaluation = only(f"{root}/ws/artifacts/Evaluator_rnn_denoise/evaluation/*")
    overall, _ = overall_metrics(evaluation)
    # Copying a text with about 30% of its tokens masked keeps much of its character n-grams, not all.
    assert 20 < overall["copy_chrf"] < 95, overall
    assert overall["chrf_above_copy"] == pytest.approx(overall["chrf"] - overall["copy_chrf"], abs=1e-6)
    assert glob.glob(f"{root}/serving/textflow-rnn-denoise/*")


def test_a_translator_starts_from_the_pushed_denoiser_whole(denoising_run):
    """BART's recipe through the CLI: the translator is the denoiser carried on whole, tokenizing
    with its SentencePiece model (imported, not learned again), and it serves."""
    root, _ = denoising_run
    denoiser = only(f"{root}/serving/textflow-rnn-denoise/*")
    data = write_pairs(root / "pairs.jsonl", rows=200)
    args = ["run", *FIXED_ACCELERATION, "--data", data, "--format", "jsonl", "--text-column", "de", "--target-column", "en",
            "--models", "rnn", "--init-from", "textflow-rnn-denoise", "--workspace", "ws", "--serving-dir", "serving",
            *TINY_SEQ2SEQ]
    result = textflow(*args, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SubwordVocabularyGen" not in result.stdout and "SubwordVocabulary finished" in result.stdout
    assert (f"initialised from textflow-rnn-denoise version {Path(denoiser).name} (its denoise, trained on "
            in result.stdout), result.stdout
    assert "the whole model loaded, at 1x the learning rate" in result.stdout
    assert "serving check passed" in result.stdout
    translator = only(f"{root}/serving/textflow-rnn-seq2seq/*")
    model_file = Path(translator) / "assets.extra" / "subword.model"
    assert model_file.read_bytes() == (Path(denoiser) / "assets.extra" / "subword.model").read_bytes()
    described = read_description(translator)
    assert described["hparams"] == read_description(denoiser)["hparams"]  # rebuilt as the denoiser was
    assert described["initialised_from"]["new_layers"] == []
