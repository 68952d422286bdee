"""The translation benchmark's scoring and input checks (the benchmark itself runs by hand)."""

import json
import subprocess
import sys

import pytest

from bench.seq2seq import length_sorted_batches
from bench.translate_file import read_pairs, scores

HYPOTHESES = ["A man in an orange hat.", "Two dogs play in the grass!", "the cat", "A girl, jumping."]
REFERENCES = ["A man in an orange hat starring at something.", "Two dogs are playing in the grass.",
              "The cat sits.", "A girl is jumping."]


def sacrebleu_cli(reference_file, hypothesis_file, *options) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-m", "sacrebleu", str(reference_file), "-i", str(hypothesis_file), "-b", "-w", "4", *options],
        capture_output=True, text=True, check=True,
    ).stdout
    return [float(v) for v in json.loads(out)] if out.strip().startswith("[") else [float(out)]


def test_bleu_and_chrf_equal_sacrebleu_on_the_same_files(tmp_path):
    hypothesis_file, reference_file = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hypothesis_file.write_text("\n".join(HYPOTHESES) + "\n", encoding="utf-8")
    reference_file.write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    ours = scores(HYPOTHESES, REFERENCES)
    bleu, chrf = sacrebleu_cli(reference_file, hypothesis_file, "-m", "bleu", "chrf")
    [bleu_lowercase] = sacrebleu_cli(reference_file, hypothesis_file, "-m", "bleu", "-lc")
    assert ours["bleu_cased"] == pytest.approx(bleu, abs=0.006)
    assert ours["chrf"] == pytest.approx(chrf, abs=0.006)
    assert ours["bleu_lowercase"] == pytest.approx(bleu_lowercase, abs=0.006)
    assert ours["bleu_lowercase"] > ours["bleu_cased"]  # "the cat" matches "The cat" only lowercased


def test_a_bad_line_names_its_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"de": "Ein Hund.", "en": "A dog."}\n{"de": "Nur Deutsch."}\n', encoding="utf-8")
    with pytest.raises(SystemExit, match=r"pairs.jsonl:2: expected a JSON object with 'de' and 'en'"):
        read_pairs(str(path))


def test_training_batches_hold_similar_lengths_and_every_pair_once():
    import numpy as np

    rng = np.random.default_rng(0)
    sources = [np.arange(3, 3 + n) for n in rng.integers(1, 40, 300)]
    targets = [np.arange(3, 3 + n) for n in rng.integers(1, 40, 300)]
    batches = length_sorted_batches(sources, targets, 16, rng)
    assert len(batches) == 300 // 16  # the last partial batch is dropped
    assert all(s.shape[0] == 16 and s.shape[1] % 8 == 0 for s, _ in batches)
    in_order = length_sorted_batches(sources, targets, 16, None)
    assert sum(len(s) for s, _ in in_order) == 300
