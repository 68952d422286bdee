"""The language-model task (the default): each family learns to predict a text's next token.

Evaluated on cross-entropy per token, teacher-forced, against the train split's unigram model
(the trivial baseline); the report shows each model's continuations of test texts. The VAE
family's branch of this task is a VAE of the text (`tasks.vae`).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from models import registry
from tasks import samples as sample_io
from tasks.base import Task, Threshold, TrainerRun, TrainingData
from tasks.document import Block, Table

LM_METRICS_MODULE = "components.evaluation.lm_metrics"
UNIGRAM_METRICS_MODULE = "components.evaluation.unigram_metrics"
PROMPT_WORDS = 5  # a language model continues each example's first words
CONTINUATION_TOKENS = 40


class LanguageModel(Task):
    name = "language_model"
    variants = {"vae": "vae"}  # the VAE family's language model is a VAE
    summary_label = ""
    nats_per_token = "cross_entropy_per_token"
    metrics = (
        (LM_METRICS_MODULE, {"CrossEntropyPerToken": "cross_entropy_per_token", "Perplexity": "perplexity",
                             "BitsPerToken": "bits_per_token", "TokenAccuracy": "token_accuracy"}),
        (UNIGRAM_METRICS_MODULE, {"UnigramCrossEntropy": "unigram_cross_entropy",
                                  "CrossEntropyBelowUnigram": "cross_entropy_below_unigram"}),
    )
    # what is judged, in the thresholds and the trivial baseline's words
    judged, below_unigram, judged_words = "cross_entropy_per_token", "cross_entropy_below_unigram", "cross-entropy"

    def model_kind(self, family: str) -> Optional[str]:
        return registry.get(family).objective

    def branch_name(self, family: str) -> str:
        return family

    def thresholds(self, limits: Any) -> list[Threshold]:
        thresholds = [Threshold(self.judged, limits.max_cross_entropy, False, limits.max_increase)]
        if limits.require_beat_baseline:
            thresholds.append(Threshold(self.below_unigram, limits.baseline_margin, True, floor=True,
                                        trivial_metric="unigram_cross_entropy"))
        return thresholds

    def trivial_baseline(self, limits: Any, metrics: dict[str, float]) -> str:
        unigram = metrics.get("unigram_cross_entropy", math.nan)
        return (f"trivial baseline: the train split's unigram model, {unigram:.4f} nats/token on the test split; beating "
                f"it takes {self.judged_words} <= {unigram - limits.baseline_margin:.4f} ({limits.baseline_margin:g} "
                f"below){floor_state(limits)}")

    def headline(self, metrics: dict[str, float]) -> str:
        m = metrics
        return (
            f"cross-entropy {m.get('cross_entropy_per_token', math.nan):.4f} nats/token "
            f"({m.get('bits_per_token', math.nan):.3f} bits), perplexity {m.get('perplexity', math.nan):.2f}, "
            f"token accuracy {m.get('token_accuracy', math.nan):.3f}"
        )

    def samples(self, model_path: str, split_uri: str, data: Any, count: int) -> list[dict]:
        """Each example's first words and the model's continuation of them, greedy and top-p 0.9
        (the `generate` signature)."""
        import tensorflow as tf

        records = sample_io.split_records(split_uri, count)
        model = sample_io.load_model(model_path)
        if not records or "generate" not in model.signatures:
            return []
        prompts = [" ".join(text.split()[:PROMPT_WORDS]) for text in sample_io.texts(records, data.first_text_column)]
        generate = model.signatures["generate"]

        def continuations(temperature: float, top_p: float) -> list[str]:
            out = generate(prompt=tf.constant(prompts), max_new_tokens=tf.constant(CONTINUATION_TOKENS),
                           temperature=tf.constant(temperature), top_k=tf.constant(0), top_p=tf.constant(top_p),
                           beam_width=tf.constant(1), seed=tf.constant(1, tf.int64))
            return [t.decode("utf-8", errors="replace") for t in out["continuation"].numpy()]

        greedy, sampled = continuations(0.0, 1.0), continuations(1.0, 0.9)
        return [{"prompt": p, "greedy": g, "top_p": t} for p, g, t in zip(prompts, greedy, sampled)]

    def report_blocks(self, family: dict) -> list[Block]:
        samples = family.get("samples") or []
        if not samples:
            return []
        return ["What it writes: each test example's first words, continued greedily and sampled (top-p 0.9).",
                Table(["prompt", "greedy", "top-p 0.9"], [[s["prompt"], s["greedy"], s["top_p"]] for s in samples])]

    def training_data(self, run: TrainerRun) -> TrainingData:
        """(input_ids, target_ids): BOS + the text's tokens, and its tokens + EOS."""
        from models.layers.tokens import model_vocab_size

        return TrainingData(model_vocab_size(run.vocabulary_size()), ("input_ids", "target_ids"))

    def export(self, run: TrainerRun, model: Any, data: TrainingData) -> None:
        from models.serving.export import export_language_model

        self._export_with_codec(run, model, export_language_model)

    @staticmethod
    def _export_with_codec(run: TrainerRun, model: Any, export: Any) -> None:
        """Exports through `export`, whose signatures turn text into the Transform's token ids and back."""
        from models.serving.export import TextCodec

        text_column = run.settings["text_column"]
        codec = TextCodec(
            text_feature=text_column,
            vocabulary_file=run.vocabulary_file(),
            token_separator="" if run.settings["tokenizer"] == "char" else " ",
            decoder=run.family.decoder,
            max_positions=getattr(run.hparams, "context", None),
            sequence_length=run.sequence_length,
        )
        export(model, run.serving_model_dir, run.transform_layer(), run.raw_spec([text_column]), codec)


def floor_state(limits: Any) -> str:
    """Said after the trivial baseline when the floor is off."""
    return "" if limits.require_beat_baseline else " (floor off: evaluation.require_beat_baseline is false)"


TASK = LanguageModel()
