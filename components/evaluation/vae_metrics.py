"""TFMA metrics for the VAE family, from the outputs of its `evaluate` signature.

Per text the signature returns `negative_elbo`, `kl`, `token_count`, `teacher_forced_hits`,
`sampled_hits`, `mu` and the diagnostics of how much the decoder uses z (`TextVAE.
evaluate_texts`); the combiner adds them up over a slice:

  negative_elbo_per_token  = sum(negative_elbo) / sum(token_count)   (nats; an upper bound on
                             cross-entropy per token, so comparable with the language models)
  kl_per_sequence          = mean KL(q(z|x) || p(z)) in nats
  reconstruction_accuracy  = teacher-forced: tokens whose arg-max given z is right / tokens
  sampled_reconstruction_accuracy = the same for a greedy decode from mu (no teacher forcing)
  shuffled_z_sampled_accuracy     = the same decoded from another text's mu: what the decoder
                             gets right without this text's code (the gap to the line above is z's doing)
  edit_similarity, shuffled_z_edit_similarity = mean over texts of 1 - Levenshtein distance /
                             longer length, of the greedy decode from the text's own mu and another's
  shuffled_z_nll_gap       = mean over texts of the teacher-forced NLL given another text's mu
                             minus given its own (nats per text; 0 when the decoder ignores z)
  active_units             = latent units whose mu varies across texts (variance > 0.01,
                             Burda et al. 2016): how much of the code the model uses
"""

from __future__ import annotations

from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.edit_similarity import edit_similarities
from components.evaluation.tfma_metrics import per_model_computations

_SUMS = ("negative_elbo", "kl", "token_count", "teacher_forced_hits", "sampled_hits")
_IDS = ("target_ids", "sampled_ids", "shuffled_z_sampled_ids")
_SHUFFLED = ("own_z_nll", "shuffled_z_nll", "shuffled_z_sampled_hits")
ACTIVE_UNIT_VARIANCE = 0.01


class _Sums(dict):
    """Running sums over texts: the scalar outputs, the number of texts, and mu's moments."""

    @classmethod
    def empty(cls) -> "_Sums":
        sums = cls({name: 0.0 for name in (*_SUMS, *_SHUFFLED)})
        sums.update(texts=0, mu=0.0, mu_squared=0.0, shuffled_z_texts=0, shuffled_z_tokens=0.0,
                    edit_similarity=0.0, shuffled_z_edit_similarity=0.0)
        return sums

    def merge(self, other: "_Sums") -> "_Sums":
        return _Sums({key: self[key] + other[key] for key in self})


class _VAESums(beam.CombineFn):
    def __init__(self, key: metric_types.MetricKey, model_name: str, finish: Callable[[_Sums], float]):
        self._key, self._model_name, self._finish = key, model_name, finish

    def create_accumulator(self) -> _Sums:
        return _Sums.empty()

    def add_input(self, acc: _Sums, element: metric_types.StandardMetricInputs) -> _Sums:
        predictions = element.get_by_key(constants.PREDICTIONS_KEY, self._model_name)
        expected = (*_SUMS, *_IDS, *_SHUFFLED, "shuffled_z_texts", "mu")
        missing = [name for name in expected if not isinstance(predictions, dict) or name not in predictions]
        if missing:
            raise ValueError(f"the VAE's evaluate signature must return {', '.join(missing)}; got {predictions!r}")
        mu = np.atleast_2d(np.asarray(predictions["mu"], dtype=np.float64))
        for name in _SUMS:
            acc[name] += float(np.sum(predictions[name]))
        acc["texts"] += mu.shape[0]
        ids = {name: np.atleast_2d(predictions[name]) for name in _IDS}
        acc["edit_similarity"] += float(edit_similarities(ids["target_ids"], ids["sampled_ids"]).sum())
        # another text's z exists only in a batch of several texts: those are counted apart
        other = np.atleast_1d(predictions["shuffled_z_texts"]).astype(bool)
        acc["shuffled_z_texts"] += int(other.sum())
        acc["shuffled_z_tokens"] += float(np.atleast_1d(predictions["token_count"])[other].sum())
        for name in _SHUFFLED:
            acc[name] += float(np.atleast_1d(predictions[name])[other].sum())
        acc["shuffled_z_edit_similarity"] += float(
            edit_similarities(ids["target_ids"][other], ids["shuffled_z_sampled_ids"][other]).sum()
        )
        acc["mu"] = acc["mu"] + mu.sum(axis=0)
        acc["mu_squared"] = acc["mu_squared"] + np.square(mu).sum(axis=0)
        return acc

    def merge_accumulators(self, accumulators: Iterable[_Sums]) -> _Sums:
        total = _Sums.empty()
        for acc in accumulators:
            total = total.merge(acc)
        return total

    def extract_output(self, acc: _Sums) -> dict[metric_types.MetricKey, float]:
        return {self._key: self._finish(acc)}


def _ratio(numerator: str, denominator: str) -> Callable[[_Sums], float]:
    return lambda s: s[numerator] / s[denominator] if s[denominator] else float("nan")


def shuffled_z_nll_gap(sums: _Sums) -> float:
    texts = sums["shuffled_z_texts"]
    return (sums["shuffled_z_nll"] - sums["own_z_nll"]) / texts if texts else float("nan")


def active_units(sums: _Sums) -> float:
    if not sums["texts"]:
        return float("nan")
    mean = sums["mu"] / sums["texts"]
    variance = sums["mu_squared"] / sums["texts"] - np.square(mean)
    return float(np.sum(variance > ACTIVE_UNIT_VARIANCE))


def _metric(finish: Callable[[_Sums], float]) -> Callable[..., metric_types.MetricComputations]:
    return per_model_computations(lambda key, model_name: _VAESums(key, model_name, finish), [constants.PREDICTIONS_KEY])


class NegativeElboPerToken(tfma.metrics.Metric):
    def __init__(self, name: str = "negative_elbo_per_token"):
        super().__init__(_metric(_ratio("negative_elbo", "token_count")), name=name)


class KLPerSequence(tfma.metrics.Metric):
    def __init__(self, name: str = "kl_per_sequence"):
        super().__init__(_metric(_ratio("kl", "texts")), name=name)


class ReconstructionAccuracy(tfma.metrics.Metric):
    def __init__(self, name: str = "reconstruction_accuracy"):
        super().__init__(_metric(_ratio("teacher_forced_hits", "token_count")), name=name)


class SampledReconstructionAccuracy(tfma.metrics.Metric):
    def __init__(self, name: str = "sampled_reconstruction_accuracy"):
        super().__init__(_metric(_ratio("sampled_hits", "token_count")), name=name)


class ActiveUnits(tfma.metrics.Metric):
    def __init__(self, name: str = "active_units"):
        super().__init__(_metric(active_units), name=name)


class ShuffledZSampledAccuracy(tfma.metrics.Metric):
    def __init__(self, name: str = "shuffled_z_sampled_accuracy"):
        super().__init__(_metric(_ratio("shuffled_z_sampled_hits", "shuffled_z_tokens")), name=name)


class EditSimilarity(tfma.metrics.Metric):
    def __init__(self, name: str = "edit_similarity"):
        super().__init__(_metric(_ratio("edit_similarity", "texts")), name=name)


class ShuffledZEditSimilarity(tfma.metrics.Metric):
    def __init__(self, name: str = "shuffled_z_edit_similarity"):
        super().__init__(_metric(_ratio("shuffled_z_edit_similarity", "shuffled_z_texts")), name=name)


class ShuffledZNllGap(tfma.metrics.Metric):
    def __init__(self, name: str = "shuffled_z_nll_gap"):
        super().__init__(_metric(shuffled_z_nll_gap), name=name)
