"""The classifier task (a label column is set): each family learns a text's label.

Evaluated on accuracy and macro AUC, per label too, against the majority class (the trivial
baseline: a classifier must beat it by more than the test split's sampling noise); the report
shows each model's most confident right and wrong answers.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from models import registry
from models.runtime.sizing import SizeRule
from tasks import samples as sample_io
from tasks.base import FLOOR_STANDARD_ERRORS, Task, Threshold, TrainerRun, TrainingData, accuracy_floor
from tasks.document import Block, Table, number
from tasks.language_model import floor_state

CLASSIFIER_METRICS_MODULE = "components.evaluation.classifier_metrics"
CLASSIFIED_EXAMPLES = 200  # a classifier's right and wrong answers are picked from this many


class Classifier(Task):
    name = "classifier"
    reads_column = "label_column"
    chosen_by_column = True
    default_tokenizer = "word"
    summary_label = " classifier"
    metrics = ((CLASSIFIER_METRICS_MODULE, {
        "Accuracy": "accuracy", "AUC": "auc", "MacroPrecision": "macro_precision", "MacroRecall": "macro_recall",
        "MajorityClassAccuracy": "majority_class_accuracy", "AccuracyAboveChance": "accuracy_above_chance"}),)
    evaluates_labels = True  # TFMA runs `transform_features` for the label's class id
    slice_by_label = True
    size_rule = SizeRule(base_tokens=100_000)  # SST-2's 60,000 phrases (about 600,000 words): base

    def model_kind(self, family: str) -> Optional[str]:
        return "classifier" if "classifier" in registry.kinds(family) else None

    def thresholds(self, limits: Any) -> list[Threshold]:
        floor = limits.require_beat_baseline
        thresholds = [
            Threshold("accuracy", limits.min_accuracy, True, limits.max_accuracy_drop),
            Threshold("auc", max(limits.min_auc, limits.baseline_min_auc) if floor else limits.min_auc, True,
                      floor=floor and limits.baseline_min_auc > limits.min_auc),
        ]
        if floor:
            thresholds.append(Threshold("accuracy_above_chance", 0.0, True, floor=True,
                                        trivial_metric="majority_class_accuracy"))
        return thresholds

    def trivial_baseline(self, limits: Any, metrics: dict[str, float]) -> str:
        majority = metrics.get("majority_class_accuracy", math.nan)
        examples = int(metrics.get("example_count", 0))
        needed = accuracy_floor(majority, examples)
        too_few = (" (above 1: this test split is too small to show that any model beats a constant answer)"
                   if needed > 1 else "")
        return (f"trivial baseline: majority class accuracy {majority:.4f} on {examples} test examples; beating it takes "
                f"accuracy >= {needed:.4f} (+{FLOOR_STANDARD_ERRORS:g} standard errors) and AUC >= "
                f"{max(limits.min_auc, limits.baseline_min_auc):.2f}{too_few}{floor_state(limits)}")

    def headline(self, metrics: dict[str, float]) -> str:
        m = metrics
        return (
            f"accuracy {m.get('accuracy', math.nan):.4f}, AUC {m.get('auc', math.nan):.4f}, "
            f"macro precision {m.get('macro_precision', math.nan):.4f}, macro recall {m.get('macro_recall', math.nan):.4f}"
        )

    def samples(self, model_path: str, split_uri: str, data: Any, count: int) -> list[dict]:
        """The `count` most confident right answers and the `count` most confident wrong ones
        among the first test examples (`serving_default`)."""
        import tensorflow as tf

        records = sample_io.split_records(split_uri, CLASSIFIED_EXAMPLES)
        model = sample_io.load_model(model_path)
        if not records:
            return []
        out = model.signatures["serving_default"](examples=tf.constant(records))
        probabilities = out["probabilities"].numpy()
        classes = [c.decode("utf-8") for c in out["classes"].numpy()[0]]
        answers = []
        for text, label, row in zip(sample_io.texts(records, data.first_text_column),
                                    sample_io.texts(records, data.label_column), probabilities):
            best = int(row.argmax())
            answers.append({"text": text, "label": label, "predicted": classes[best],
                            "probability": round(float(row[best]), 4), "right": classes[best] == label})
        answers.sort(key=lambda a: -a["probability"])
        return [a for a in answers if a["right"]][:count] + [a for a in answers if not a["right"]][:count]

    def report_blocks(self, family: dict) -> list[Block]:
        samples = family.get("samples") or []
        if not samples:
            return []
        return ["Its most confident right and wrong answers among the first test examples.",
                Table(["text", "label", "predicted", "probability", "answer"],
                      [[s["text"][:200], s["label"], s["predicted"], number(s["probability"]),
                        "right" if s["right"] else "wrong"] for s in samples])]

    def training_data(self, run: TrainerRun) -> TrainingData:
        """(input_ids, the label's class id)."""
        from models.layers.tokens import model_vocab_size

        classes = run.label_classes()
        if len(classes) < 2:
            raise ValueError(f"the label column has {len(classes)} distinct value(s) in the training split; "
                             f"a classifier needs at least 2")
        return TrainingData(model_vocab_size(run.vocabulary_size()), ("input_ids", run.label_feature),
                            num_classes=len(classes), state={"classes": classes})

    def export(self, run: TrainerRun, model: Any, data: TrainingData) -> None:
        from models.serving.export import export_classifier

        text_column, label_column = run.settings["text_column"], run.settings["label_column"]
        export_classifier(model, run.serving_model_dir, run.transform_layer(), run.raw_spec([text_column]),
                          run.raw_spec([label_column]), data.state["classes"])


TASK = Classifier()
