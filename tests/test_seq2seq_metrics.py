"""The TFMA BLEU and chrF metrics of decoded output equal sacreBLEU's corpus scores."""

import numpy as np
import pytest
import sacrebleu
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.seq2seq_metrics import (
    BleuAboveCopy,
    BleuAboveRetrieval,
    ChrfAboveCopy,
    ChrfAboveRetrieval,
    CopyBleu,
    CorpusBleu,
    CorpusChrf,
    DecodedExamples,
    RetrievalBleu,
    RetrievalChrf,
)
from pipeline.config import load_config

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


# --- the retrieval floor: the nearest training pair's target --------------------------------

TRAIN_SOURCES = ["Ein Hund läuft im Park.", "Zwei Männer spielen Fußball.", "Eine Frau liest ein Buch.",
                 "Ein Hund spielt mit einem Ball.", "Ein Kind isst ein Eis."]
TRAIN_TARGETS = ["A dog runs in the park.", "Two men play soccer.", "A woman reads a book.",
                 "A dog plays with a ball.", "A child eats an ice cream."]


def test_the_nearest_training_target_is_the_tf_idf_cosine_reference():
    """Against scikit-learn's TfidfVectorizer (smooth idf, l2 norm) and the cosine's argmax, on
    hand-made pairs; a source with no known word takes the first training pair."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from components.evaluation.retrieval_baseline import nearest_targets

    tests = [*SOURCES, "Ein Hund spielt im Park.", "Xylophon!"]
    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\w+")
    train = vectorizer.fit_transform(TRAIN_SOURCES)
    expected = [TRAIN_TARGETS[i] for i in (vectorizer.transform(tests) @ train.T).toarray().argmax(axis=1)]
    assert nearest_targets(TRAIN_SOURCES, TRAIN_TARGETS, tests) == expected
    assert expected[-2:] == ["A dog runs in the park.", "A dog runs in the park."]


def with_retrieved(i, output, retrieved):
    e = element(i)
    e["predictions"]["output"] = np.array([output.encode()], dtype=object)
    e["features"] = {"retrieved_target": np.array([retrieved.encode()], dtype=object)}
    return e


def test_a_translator_that_outputs_its_nearest_training_target_scores_the_baseline_and_is_not_blessed():
    from pipeline.evaluation import _tfma_threshold
    from tasks.pair import SEQ2SEQ

    retrieved = ["A man runs in the park.", "Two dogs play.", "A child eats.", "A woman reads."]
    copying = [with_retrieved(i, retrieved[i], retrieved[i]) for i in range(4)]
    expected = sacrebleu.corpus_bleu(retrieved, [REFERENCES]).score
    assert computed(RetrievalBleu(), copying) == pytest.approx(expected)
    assert computed(RetrievalChrf(), copying) == pytest.approx(sacrebleu.corpus_chrf(retrieved, [REFERENCES]).score)
    above = computed(BleuAboveRetrieval(), copying)
    assert above == 0.0 and computed(ChrfAboveRetrieval(), copying) == 0.0
    floors = {t.metric: t for t in SEQ2SEQ.thresholds(load_config().evaluation) if t.floor}
    assert set(floors) == {"bleu_above_copy", "chrf_above_copy", "bleu_above_retrieval", "chrf_above_retrieval"}
    bound = _tfma_threshold(floors["bleu_above_retrieval"]).value_threshold.lower_bound.value
    assert above < bound and 0 < bound < 1e-300  # equal to the baseline is not above it
    better = [with_retrieved(i, OUTPUTS[i], retrieved[i]) for i in range(4)]
    assert computed(BleuAboveRetrieval(), better) == pytest.approx(
        sacrebleu.corpus_bleu(OUTPUTS, [REFERENCES]).score - expected)


def test_the_retrieval_floor_names_what_is_missing():
    with pytest.raises(ValueError, match="'retrieved_target' is missing from 4 of the decoded test examples"):
        computed(RetrievalBleu(), [element(i) for i in range(4)])
