"""TFMA metrics of an encoder-decoder's decoded output: corpus BLEU and chrF (sacreBLEU), and
the same scores of the trivial baseline, copying the source.

The model's `evaluate` signature (`models.serving.seq2seq_export`) decodes a hash sample of the eval
examples with beam search and returns, per example, `decoded` (1 for the sample), `output`,
`source` (for denoising: the corrupted text the model read) and `reference`. Each metric
gathers the sample's texts over a slice and scores them as one corpus, exactly as
`sacrebleu.corpus_bleu` / `corpus_chrf` would (BLEU: cased, the 13a tokenizer):

  bleu, chrf                   the model's output against the references
  copy_bleu, copy_chrf         the source copied as it is (translation: the untranslated text;
                               denoising: the corrupted input)
  bleu_above_copy, chrf_above_copy   the model's score minus the copy's (the blessing floor)
  retrieval_bleu, retrieval_chrf     the target of the nearest training pair, where the test split
                               carries it (`retrieved_target`, written by
                               `components.evaluation.retrieval_baseline` for seq2seq runs)
  bleu_above_retrieval, chrf_above_retrieval   the model's score minus the retrieval's (the
                               floor beside the copy's)
  decoded_examples             how many examples the scores cover

The teacher-forced cross-entropy of the targets comes from `components.evaluation.lm_metrics`, which reads
the same signature's `log_likelihood` and `token_count` over every test example.
"""

from __future__ import annotations

from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
import sacrebleu
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.tfma_metrics import per_model_computations

# outputs, sources, references and (where the test split carries them) retrieved targets of the decoded examples
_Texts = tuple[list[str], list[str], list[str], list[str]]
RETRIEVED_FEATURE = "retrieved_target"


def _text(value: object) -> str:
    value = np.asarray(value).reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU, sacreBLEU's defaults (cased, 13a tokenizer); NaN without examples."""
    return sacrebleu.corpus_bleu(hypotheses, [references]).score if hypotheses else float("nan")


def chrf(hypotheses: list[str], references: list[str]) -> float:
    """Corpus chrF (sacreBLEU's defaults: character 6-grams, beta 2); NaN without examples."""
    return sacrebleu.corpus_chrf(hypotheses, [references]).score if hypotheses else float("nan")


class _DecodedTexts(beam.CombineFn):
    """Gathers the decoded examples' texts over a slice, then scores them with `finish`."""

    def __init__(self, key: metric_types.MetricKey, model_name: str, finish: Callable[[_Texts], float]):
        self._key, self._model_name, self._finish = key, model_name, finish

    def create_accumulator(self) -> _Texts:
        return [], [], [], []

    def add_input(self, acc: _Texts, element: metric_types.StandardMetricInputs) -> _Texts:
        predictions = element.get_by_key(constants.PREDICTIONS_KEY, self._model_name)
        if not isinstance(predictions, dict) or "decoded" not in predictions:
            raise ValueError(f"the model's evaluate signature must return 'decoded', 'output', 'source' and "
                             f"'reference'; got {predictions!r}")
        if int(np.asarray(predictions["decoded"]).reshape(-1)[0]):
            for texts, name in zip(acc, ("output", "source", "reference")):
                texts.append(_text(predictions[name]))
            features = element.get(constants.FEATURES_KEY) or {}
            if RETRIEVED_FEATURE in features:
                acc[3].append(_text(features[RETRIEVED_FEATURE]))
        return acc

    def merge_accumulators(self, accumulators: Iterable[_Texts]) -> _Texts:
        merged: _Texts = ([], [], [], [])
        for acc in accumulators:
            for into, texts in zip(merged, acc):
                into.extend(texts)
        return merged

    def extract_output(self, acc: _Texts) -> dict[metric_types.MetricKey, float]:
        return {self._key: float(self._finish(acc))}


def _metric(finish: Callable[[_Texts], float], features: bool = False) -> Callable[..., metric_types.MetricComputations]:
    return per_model_computations(lambda key, model_name: _DecodedTexts(key, model_name, finish),
                                  [constants.PREDICTIONS_KEY, *([constants.FEATURES_KEY] if features else [])])


def _retrieved(texts: _Texts) -> list[str]:
    """The retrieved targets, one per decoded example, or an error naming what is missing."""
    if len(texts[3]) != len(texts[2]):
        raise ValueError(f"'{RETRIEVED_FEATURE}' is missing from {len(texts[2]) - len(texts[3])} of the decoded test "
                         "examples: the retrieval floor needs the RetrievalBaseline component's test split")
    return texts[3]


class CorpusBleu(tfma.metrics.Metric):
    """Corpus BLEU of the decoded output (sacreBLEU, cased, 13a)."""

    def __init__(self, name: str = "bleu"):
        super().__init__(_metric(lambda t: bleu(t[0], t[2])), name=name)


class CorpusChrf(tfma.metrics.Metric):
    """Corpus chrF of the decoded output."""

    def __init__(self, name: str = "chrf"):
        super().__init__(_metric(lambda t: chrf(t[0], t[2])), name=name)


class CopyBleu(tfma.metrics.Metric):
    """BLEU of copying the source: the trivial baseline."""

    def __init__(self, name: str = "copy_bleu"):
        super().__init__(_metric(lambda t: bleu(t[1], t[2])), name=name)


class CopyChrf(tfma.metrics.Metric):
    """chrF of copying the source (for denoising, the corrupted input): the trivial baseline."""

    def __init__(self, name: str = "copy_chrf"):
        super().__init__(_metric(lambda t: chrf(t[1], t[2])), name=name)


class BleuAboveCopy(tfma.metrics.Metric):
    """BLEU points of the output above copying the source."""

    def __init__(self, name: str = "bleu_above_copy"):
        super().__init__(_metric(lambda t: bleu(t[0], t[2]) - bleu(t[1], t[2])), name=name)


class ChrfAboveCopy(tfma.metrics.Metric):
    """chrF points of the output above copying the source."""

    def __init__(self, name: str = "chrf_above_copy"):
        super().__init__(_metric(lambda t: chrf(t[0], t[2]) - chrf(t[1], t[2])), name=name)


class RetrievalBleu(tfma.metrics.Metric):
    """BLEU of the nearest training pair's target: the retrieval baseline."""

    def __init__(self, name: str = "retrieval_bleu"):
        super().__init__(_metric(lambda t: bleu(_retrieved(t), t[2]), features=True), name=name)


class RetrievalChrf(tfma.metrics.Metric):
    """chrF of the nearest training pair's target."""

    def __init__(self, name: str = "retrieval_chrf"):
        super().__init__(_metric(lambda t: chrf(_retrieved(t), t[2]), features=True), name=name)


class BleuAboveRetrieval(tfma.metrics.Metric):
    """BLEU points of the output above the nearest training pair's target."""

    def __init__(self, name: str = "bleu_above_retrieval"):
        super().__init__(_metric(lambda t: bleu(t[0], t[2]) - bleu(_retrieved(t), t[2]), features=True), name=name)


class ChrfAboveRetrieval(tfma.metrics.Metric):
    """chrF points of the output above the nearest training pair's target."""

    def __init__(self, name: str = "chrf_above_retrieval"):
        super().__init__(_metric(lambda t: chrf(t[0], t[2]) - chrf(_retrieved(t), t[2]), features=True), name=name)


class DecodedExamples(tfma.metrics.Metric):
    """How many test examples were decoded (the sample the BLEU and chrF scores cover)."""

    def __init__(self, name: str = "decoded_examples"):
        super().__init__(_metric(lambda t: len(t[0])), name=name)
