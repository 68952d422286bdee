"""The tagger task (a tag column is set): each family learns one tag per word (part of speech,
named entities, chunks), the recurrent network's many-to-many shape.

The words come tokenized (CoNLL-U, or JSONL token lists) and are never re-tokenized; a model
reads each word's id and its characters (for words the train split never showed). Evaluated on
token accuracy, macro F1 over the tags, sentence exact match, and accuracy on seen and unseen
words, against the most frequent train tag of each word (the trivial baseline: a tagger must
beat it by more than the test split's sampling noise); the report shows test sentences with
their gold and predicted tags.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from models import registry
from models.runtime.sizing import SizeRule
from tasks import samples as sample_io
from tasks.base import FLOOR_STANDARD_ERRORS, Task, Threshold, TrainerRun, TrainingData
from tasks.document import Block, Heatmap, Table, number
from tasks.language_model import floor_state

TAGGER_METRICS_MODULE = "components.evaluation.tagger_metrics"
MAX_WORD_CHARACTERS = 20  # characters of a word its character view reads (a longer word: its first and last 10)
# In training, each word is read as the unknown word this often (fresh each epoch), so the model
# learns to tag from the characters and the context what the test split's unseen words give it
WORD_DROPOUT = 0.1


class Tagger(Task):
    name = "tagger"
    reads_column = "tag_column"
    chosen_by_column = True
    tokenizers = ("word",)
    default_tokenizer = "word"
    length_buckets = (10, 20, 40)  # words per sentence
    summary_label = " tagger"
    key_metrics = ("token_accuracy",)
    metrics = ((TAGGER_METRICS_MODULE, {
        "TokenAccuracy": "token_accuracy", "MacroF1": "macro_f1", "SentenceAccuracy": "sentence_accuracy",
        "SeenWordAccuracy": "seen_word_accuracy", "UnseenWordAccuracy": "unseen_word_accuracy",
        "MostFrequentTagAccuracy": "most_frequent_tag_accuracy", "MajorityTagAccuracy": "majority_tag_accuracy",
        "AccuracyAboveBaseline": "accuracy_above_baseline",
        "SpanF1": "span_f1", "PerTagCount": "per_tag_count"}),)
    size_rule = SizeRule(base_tokens=100_000)  # UD English EWT's 205,000 training words: base
    token_features = ("input_ids",)
    train_epochs = 20.0
    train_minutes = 8.0

    def model_kind(self, family: str) -> Optional[str]:
        return "tagger" if "tagger" in registry.kinds(family) else None

    def transform_settings(self, config: Any) -> dict:
        return {"tag_column": config.data.tag_column, "max_word_chars": MAX_WORD_CHARACTERS}

    def trainer_settings(self, config: Any) -> dict:
        return {"tag_column": config.data.tag_column}

    def metric_configs(self, config: Any) -> list[tuple[str, str, str, dict]]:
        """`metrics`, span F1 as `tagger.spans` sets it (auto: where the tags are BIO tags; false: left out)."""
        spans = config.tagger.spans
        return [(module, class_name, name, {"spans": spans} if name == "span_f1" else {})
                for module, class_name, name, _ in super().metric_configs(config) if name != "span_f1" or spans is not False]

    def thresholds(self, limits: Any) -> list[Threshold]:
        thresholds = [Threshold("token_accuracy", limits.min_accuracy, True, limits.max_accuracy_drop)]
        if limits.require_beat_baseline:
            thresholds.append(Threshold("accuracy_above_baseline", 0.0, True, floor=True,
                                        trivial_metric="most_frequent_tag_accuracy"))
        return thresholds

    def trivial_baseline(self, limits: Any, metrics: dict[str, float]) -> str:
        per_word = metrics.get("most_frequent_tag_accuracy", math.nan)
        majority = metrics.get("majority_tag_accuracy", math.nan)
        needed = metrics.get("token_accuracy", math.nan) - metrics.get("accuracy_above_baseline", math.nan)
        return (f"trivial baseline: each word's most frequent train tag (unseen words: the most frequent tag), token "
                f"accuracy {per_word:.4f} on the test split (the most frequent tag for every word: {majority:.4f}); "
                f"beating the stronger takes token accuracy >= {needed:.4f} (+{FLOOR_STANDARD_ERRORS:g} standard "
                f"errors){floor_state(limits)}")

    def headline(self, metrics: dict[str, float]) -> str:
        m = metrics
        return (f"token accuracy {m.get('token_accuracy', math.nan):.4f} (unseen words "
                f"{m.get('unseen_word_accuracy', math.nan):.4f}), macro F1 {m.get('macro_f1', math.nan):.4f}, "
                f"sentences all right {m.get('sentence_accuracy', math.nan):.4f}"
                + (f", span F1 {m['span_f1']:.4f}" if not math.isnan(m.get("span_f1", math.nan)) else ""))

    def samples(self, model_path: str, split_uri: str, data: Any, count: int) -> list[dict]:
        """The first `count` test sentences with their gold and predicted tags (`serving_default`)."""
        import tensorflow as tf

        records = sample_io.split_records(split_uri, count)
        if not records:
            return []
        out = sample_io.load_model(model_path).signatures["serving_default"](examples=tf.constant(records))
        found = []
        for record, predicted in zip(records, out["tags"].numpy()):
            tokens = sample_io.values(record, data.first_text_column)
            gold = sample_io.values(record, data.tag_column)
            found.append({"tokens": tokens, "gold": gold,
                          "predicted": [t.decode("utf-8") for t in predicted[: len(tokens)]]})
        return found

    def report_blocks(self, family: dict) -> list[Block]:
        blocks: list[Block] = per_tag_blocks(family.get("metrics", {}))
        samples = family.get("samples") or []
        if samples:
            blocks += ["The first test sentences, each word with its predicted tag; a mistake shows the gold tag beside it.",
                       Table(["sentence", "words right"],
                             [[marked(s), f"{sum(g == p for g, p in zip(s['gold'], s['predicted']))}/{len(s['gold'])}"]
                              for s in samples])]
        return blocks

    def training_data(self, run: TrainerRun) -> TrainingData:
        """((input_ids, char_ids), tag ids + 1): class 0 is the padding slot, so the language
        models' masked loss and accuracy count the real words only. In training a word is read
        as unknown at `WORD_DROPOUT`'s rate; the kept weights are those of the best validation
        token accuracy (the validation loss of a tagger rose after two passes while its accuracy
        still grew)."""
        import tensorflow as tf

        from models.layers.tokens import PAD_ID, model_vocab_size

        classes = run.label_classes()
        if len(classes) < 2:
            raise ValueError(f"the tag column has {len(classes)} distinct tag(s) in the training split; a tagger "
                             f"needs at least 2")
        vocab_size = model_vocab_size(run.vocabulary_size())
        unknown = tf.constant(vocab_size - 1, tf.int64)  # the vocabulary's out-of-vocabulary id

        def drop_words(example: dict) -> dict:
            ids = example["input_ids"]
            dropped = tf.random.uniform(tf.shape(ids)) < WORD_DROPOUT
            return {**example, "input_ids": tf.where(dropped & (ids != PAD_ID), unknown, ids)}

        return TrainingData(vocab_size, (("input_ids", "char_ids"), "tag_ids"), num_classes=len(classes) + 1,
                            train_map=drop_words, batch_map=lambda inputs, tags: (inputs, tags + 1),
                            selected_by="val_token_accuracy", state={"classes": classes})

    def export(self, run: TrainerRun, model: Any, data: TrainingData) -> None:
        from models.serving.tagger_export import export_tagger

        text_column, tag_column = run.settings["text_column"], run.settings["tag_column"]
        export_tagger(model, run.serving_model_dir, run.transform_layer(), run.raw_spec([text_column]),
                      run.raw_spec([tag_column]), data.state["classes"])


def marked(sample: dict) -> str:
    """A sentence as word/TAG pairs, a mistake as word/PREDICTED[gold GOLD]."""
    return " ".join(f"{word}/{gold}" if gold == predicted else f"{word}/{predicted}[gold {gold}]"
                    for word, gold, predicted in zip(sample["tokens"], sample["gold"], sample["predicted"]))


def per_tag_blocks(metrics: dict[str, float], mistakes: int = 10) -> list[Block]:
    """Each tag's precision, recall, F1 and support, the confusion matrix as a heat map (each gold
    tag's row its share of predictions) and the most frequent mistakes, from the Evaluator's
    `tag/<tag>/...` and `confusion/<gold>/<predicted>` metrics."""
    tags = sorted({name.split("/")[1] for name in metrics if name.startswith("tag/")},
                  key=lambda tag: (-metrics.get(f"tag/{tag}/support", 0.0), tag))
    if not tags:
        return []
    cells = {tuple(name.split("/")[1:]): value for name, value in metrics.items() if name.startswith("confusion/")}
    support = {tag: metrics.get(f"tag/{tag}/support", 0.0) for tag in tags}
    table = Table(["tag", "precision", "recall", "F1", "test words"],
                  [[tag, *(number(metrics.get(f"tag/{tag}/{m}")) for m in ("precision", "recall", "f1")),
                    number(support[tag])] for tag in tags])
    heatmap = Heatmap("Confusion of the tags: each gold tag's row (left) shared among the predicted tags (top)", tags, tags,
                      [[cells.get((gold, predicted), 0.0) / support[gold] if support[gold] else 0.0 for predicted in tags]
                       for gold in tags])
    worst = sorted(((count, gold, predicted) for (gold, predicted), count in cells.items() if gold != predicted),
                   reverse=True)[:mistakes]
    return ["Per tag, on the test split's words:", table, heatmap,
            Table(["gold tag", "predicted as", "test words"], [[gold, predicted, number(count)] for count, gold, predicted in worst])]


TASK = Tagger()
