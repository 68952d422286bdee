"""The TFMA BLEU and chrF metrics of decoded output equal sacreBLEU's corpus scores."""

import numpy as np
import pytest
import sacrebleu
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.seq2seq_metrics import (
    BleuAboveCopy,
    ChrfAboveCopy,
    CopyBleu,
    CorpusBleu,
    CorpusChrf,
    DecodedExamples,
)

OUTPUTS = ["A man is running .", "Two dogs play in the snow.", "a child", "A woman reads a book on a bench."]
SOURCES = ["Ein Mann rennt.", "Zwei Hunde spielen im Schnee.", "Ein Kind.", "Eine Frau liest auf einer Bank."]
REFERENCES = ["A man runs.", "Two dogs are playing in the snow.", "A child.", "A woman is reading a book on a bench."]


def element(i, decoded=True):
    """One example's outputs of the `evaluate` signature, as TFMA hands them to a metric."""
    return metric_types.StandardMetricInputs(predictions={
        "decoded": np.array([int(decoded)]),
        "output": np.array([OUTPUTS[i].encode()], dtype=object),
        "source": np.array([SOURCES[i].encode()], dtype=object),
        "reference": np.array([REFERENCES[i].encode()], dtype=object),
    })


def computed(metric, elements, split_at=2):
    """The metric's value from two accumulators merged, as Beam combines them."""
    (computation,) = metric.computations(model_names=[""])
    combiner = computation.combiner
    first, second = combiner.create_accumulator(), combiner.create_accumulator()
    for e in elements[:split_at]:
        first = combiner.add_input(first, e)
    for e in elements[split_at:]:
        second = combiner.add_input(second, e)
    (value,) = combiner.extract_output(combiner.merge_accumulators([first, second])).values()
    return value


def test_bleu_and_chrf_equal_sacrebleu_on_the_same_outputs():
    elements = [element(i) for i in range(4)]
    assert computed(CorpusBleu(), elements) == pytest.approx(sacrebleu.corpus_bleu(OUTPUTS, [REFERENCES]).score)
    assert computed(CorpusChrf(), elements) == pytest.approx(sacrebleu.corpus_chrf(OUTPUTS, [REFERENCES]).score)
    assert computed(CopyBleu(), elements) == pytest.approx(sacrebleu.corpus_bleu(SOURCES, [REFERENCES]).score)
    bleu_gain = sacrebleu.corpus_bleu(OUTPUTS, [REFERENCES]).score - sacrebleu.corpus_bleu(SOURCES, [REFERENCES]).score
    assert computed(BleuAboveCopy(), elements) == pytest.approx(bleu_gain)
    chrf_gain = sacrebleu.corpus_chrf(OUTPUTS, [REFERENCES]).score - sacrebleu.corpus_chrf(SOURCES, [REFERENCES]).score
    assert computed(ChrfAboveCopy(), elements) == pytest.approx(chrf_gain)


def test_only_the_decoded_sample_is_scored():
    elements = [element(0), element(1, decoded=False), element(2), element(3, decoded=False)]
    kept_outputs, kept_references = [OUTPUTS[0], OUTPUTS[2]], [REFERENCES[0], REFERENCES[2]]
    assert computed(CorpusBleu(), elements) == pytest.approx(sacrebleu.corpus_bleu(kept_outputs, [kept_references]).score)
    assert computed(DecodedExamples(), elements) == 2
    assert np.isnan(computed(CorpusBleu(), [element(1, decoded=False)], split_at=1))
