"""The encoder-decoder tasks, from a source text to a target text: `seq2seq` (a target column:
translation, summarisation, question answering) and `denoise` (BART's pre-training: restore a
text from a corrupted copy of itself).

Both read the run's SentencePiece subwords (source and target share one vocabulary), train with
teacher forcing and label smoothing, and are judged by a score of their beam-search output on
the test split (BLEU for seq2seq, chrF for denoising) against copying the source (the trivial
baseline). The report shows the score by source length and sample outputs with their attention.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from models import registry
from models.runtime.sizing import SizeRule
from tasks import samples as sample_io
from tasks.base import Task, Threshold, TrainerRun, TrainingData
from tasks.document import Block, Chart, Heatmap, Table, number
from tasks.language_model import LM_METRICS_MODULE, floor_state

SEQ2SEQ_METRICS_MODULE = "components.evaluation.seq2seq_metrics"
SCORES = ("bleu", "chrf")  # every floor holds for both


class PairTask(Task):
    """What the two encoder-decoder tasks share; each names its score and what copying means."""

    tokenizers = ("subword",)
    default_tokenizer = "subword"
    length_buckets = (16, 32, 64)  # subwords of a source sentence
    eval_signature = "evaluate"  # scores the targets teacher-forced and decodes a sample with beam search
    metrics = (
        (SEQ2SEQ_METRICS_MODULE, {"CorpusBleu": "bleu", "CorpusChrf": "chrf",  # not "Bleu": TFMA has its own by that name
                                  "CopyBleu": "copy_bleu", "CopyChrf": "copy_chrf",
                                  "BleuAboveCopy": "bleu_above_copy", "ChrfAboveCopy": "chrf_above_copy",
                                  "DecodedExamples": "decoded_examples"}),
        (LM_METRICS_MODULE, {"CrossEntropyPerToken": "cross_entropy_per_token", "Perplexity": "perplexity",
                             "TokenAccuracy": "token_accuracy"}),
    )
    # Both sides of a pair count. Multi30k's 23,000 training pairs (about 750,000 subwords) get
    # `large`, `bench.seq2seq`'s translator, which needs about 10 passes (BLEU 38.66 after 8 of
    # 29,000 pairs, 28 minutes); the budget bounds each family's training on a larger corpus.
    size_rule = SizeRule(base_tokens=100_000, large_tokens=400_000)
    token_features = ("source_ids", "target_ids")
    train_epochs = 10.0
    train_minutes = 30.0
    score = ""  # the metric the decoded output is judged by
    score_label = ""  # its name in prose
    copied = ""  # what the copying baseline copies

    @property
    def key_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.score,)

    def model_kind(self, family: str) -> Optional[str]:
        return "seq2seq" if "seq2seq" in registry.kinds(family) else None

    def tokenizer_problem(self, tokenizer: Optional[str]) -> Optional[str]:
        if tokenizer in self.tokenizers:
            return None
        return "subword tokens (the encoder-decoders share one SentencePiece vocabulary); set it to subword or null"

    def transform_settings(self, config: Any) -> dict:
        return {"text_columns": config.data.text_columns, "target_column": config.data.target_column}

    def trainer_settings(self, config: Any) -> dict:
        return {"text_columns": config.data.text_columns, "target_column": config.data.target_column,
                "denoise": dataclasses.asdict(config.denoise), "beam_width": config.evaluation.beam_width,
                "decode_examples": config.evaluation.decode_examples}

    @property
    def scores(self) -> tuple[str, ...]:
        """Both scores, the one the task is judged by first."""
        return (self.score, *(s for s in SCORES if s != self.score))

    def baselines(self) -> dict[str, str]:
        """Each floor's baseline: its metric prefix and what it outputs, in words."""
        return {"copy": f"copying {self.copied}"}

    def thresholds(self, limits: Any) -> list[Threshold]:
        thresholds = [Threshold(self.score, getattr(limits, f"min_{self.score}"), True,
                                getattr(limits, f"max_{self.score}_drop"))]
        if limits.require_beat_baseline:  # above every baseline, on BLEU and chrF both
            thresholds += [Threshold(f"{score}_above_{baseline}", 0.0, True, floor=True,
                                     trivial_metric=f"{baseline}_{score}")
                           for baseline in self.baselines() for score in self.scores]
        return thresholds

    def trivial_baseline(self, limits: Any, metrics: dict[str, float]) -> str:
        found = "; ".join(f"{words}, " + ", ".join(f"{s} {metrics.get(f'{baseline}_{s}', math.nan):.2f}"
                                                    for s in self.scores)
                          for baseline, words in self.baselines().items())
        needed = " and ".join(f"{s} above {max(metrics.get(f'{b}_{s}', math.nan) for b in self.baselines()):.2f}"
                              for s in self.scores)
        return (f"trivial baseline{'s' if len(self.baselines()) > 1 else ''}: {found}, on "
                f"{int(metrics.get('decoded_examples', 0))} decoded test examples; beating "
                f"{'them' if len(self.baselines()) > 1 else 'it'} takes {needed}{floor_state(limits)}")

    def headline(self, metrics: dict[str, float]) -> str:
        m = metrics
        scores = {"bleu": f"BLEU {m.get('bleu', math.nan):.2f}", "chrf": f"chrF {m.get('chrf', math.nan):.2f}"}
        ordered = [scores.pop(self.score), *scores.values()]  # the score the task is judged by first
        return (
            f"{', '.join(ordered)} on {int(m.get('decoded_examples', 0))} decoded test examples, cross-entropy "
            f"{m.get('cross_entropy_per_token', math.nan):.4f} nats/target token (teacher-forced), token accuracy "
            f"{m.get('token_accuracy', math.nan):.3f}"
        )

    def samples(self, model_path: str, split_uri: str, data: Any, count: int) -> list[dict]:
        """One sample per test example: source (for denoising, the corrupted text), reference,
        output, and the attention [output pieces][source pieces] with both pieces' texts (the
        `evaluate` and `attention` signatures). Empty for a model without `attention`."""
        import tensorflow as tf

        records = sample_io.split_records(split_uri, count)
        model = sample_io.load_model(model_path)
        if not records or "attention" not in model.signatures:
            return []
        evaluated = model.signatures["evaluate"](examples=tf.constant(records))
        attended = model.signatures["attention"](source=evaluated["source"])
        samples = []
        for i in range(len(records)):
            source_pieces = sample_io.pieces(attended["source_pieces"][i].numpy())
            output_pieces = sample_io.pieces(attended["output_pieces"][i].numpy())
            weights = attended["attention"][i].numpy()[: len(output_pieces), : len(source_pieces)]
            samples.append({
                "source": evaluated["source"][i].numpy().decode("utf-8"),
                "reference": evaluated["reference"][i].numpy().decode("utf-8"),
                "output": attended["translation"][i].numpy().decode("utf-8"),
                "source_pieces": source_pieces,
                "output_pieces": output_pieces,
                "attention": [[round(float(w), 3) for w in row] for row in weights],
            })
        return samples

    def report_blocks(self, family: dict) -> list[Block]:
        """The decoded score by source length, and sample outputs with their attention."""
        blocks: list[Block] = []
        bars = [(name.partition("=")[2], number(values.get(self.score), 2), max(values.get(self.score) or 0.0, 0.0))
                for name, values in family.get("slices", {}).items()
                if name.startswith("length_bucket=") and values.get(self.score) == values.get(self.score)]  # NaN: nothing decoded
        if bars:
            blocks.append(Chart(f"{self.score_label} by source length (subword tokens)", bars))
        samples = family.get("samples") or []
        if samples:
            blocks.append(Table(["source", "reference", "output"],
                                [[s["source"], s["reference"], s["output"]] for s in samples]))
            for i, sample in enumerate(samples, start=1):
                blocks.append(Heatmap(f"Attention while writing example {i}: output pieces (rows) over source pieces",
                                      sample["output_pieces"], sample["source_pieces"], sample["attention"]))
        return blocks

    def noise(self, run: TrainerRun, subword_model: bytes) -> Any:
        """How the source is corrupted before the encoder reads it; None: it is not."""
        return None

    def training_data(self, run: TrainerRun) -> TrainingData:
        """(source_ids, target_ids) batches, read by the model as ((source, BOS + target), target)."""
        from models.layers.seq2seq import decoder_inputs
        from models.layers.subword import SubwordTokenizer

        proto = run.subword_model()
        tokenizer = SubwordTokenizer(proto)  # after the Trainer's seeding (see models.layers.subword)
        noise = self.noise(run, proto)

        def teacher_forcing(source: Any, target: Any) -> tuple:
            return (source, decoder_inputs(target)), target

        return TrainingData(
            tokenizer.vocab_size, ("source_ids", "target_ids"),
            train_map=noising(noise, fresh=True) if noise else None,
            eval_map=noising(noise, fresh=False) if noise else None,
            batch_map=teacher_forcing, sequences_per_example=2,
            state={"tokenizer": tokenizer, "noise": noise}, recorded={"label_smoothing": run.hparams.label_smoothing},
        )

    def export(self, run: TrainerRun, model: Any, data: TrainingData) -> None:
        from models.serving.seq2seq_export import Seq2SeqServing, export_seq2seq

        settings = run.settings
        source_columns = tuple(settings["text_columns"])
        target_column = settings.get("target_column")
        serving = Seq2SeqServing(
            source_columns=source_columns, target_column=target_column, max_length=run.sequence_length,
            beam_width=settings["beam_width"],
            decode_share=min(1.0, settings["decode_examples"] / max(run.test_examples, 1)), noise=data.state["noise"],
        )
        raw_spec = run.raw_spec([*source_columns, *([target_column] if target_column else [])])
        export_seq2seq(model, run.serving_model_dir, run.transform_layer(), raw_spec, data.state["tokenizer"], serving)


def noising(noise: Any, fresh: bool) -> Any:
    """An example map corrupting `source_ids`: a fresh random draw each time (training), or the
    same draw for the same ids (the eval batches that pick the kept weights)."""
    import tensorflow as tf

    from models.layers.denoising import corrupt

    def corrupted(example: dict) -> dict:
        ids = example["source_ids"]
        if fresh:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        else:
            weights = tf.range(1, tf.size(ids, out_type=tf.int64) + 1)
            seed = tf.stack([tf.reduce_sum(ids * weights) % (2**31 - 1), tf.constant(1, tf.int64)])
        return {**example, "source_ids": corrupt(ids, seed, noise)}

    return corrupted


class Seq2Seq(PairTask):
    name = "seq2seq"
    reads_column = "target_column"
    chosen_by_column = True
    several_sources = True  # question,context: joined into one source with a separator piece
    summary_label = " seq2seq"
    score, score_label, copied = "bleu", "BLEU", "the source"
    retrieval_floor = True
    metrics = (*PairTask.metrics, (SEQ2SEQ_METRICS_MODULE, {
        "RetrievalBleu": "retrieval_bleu", "RetrievalChrf": "retrieval_chrf",
        "BleuAboveRetrieval": "bleu_above_retrieval", "ChrfAboveRetrieval": "chrf_above_retrieval"}))

    def baselines(self) -> dict[str, str]:
        return {**super().baselines(), "retrieval": "the target of the nearest training pair (word TF-IDF of the source)"}


class Denoise(PairTask):
    name = "denoise"
    summary_label = " denoise"
    score, score_label, copied = "chrf", "chrF", "the corrupted input"
    # Tiny Shakespeare's measurements: 128-character windows and 10 passes of size base beat
    # copying the corrupted input (chrF 64.5 and 64.9 against 62.7 with 1,000 pieces; 3 passes of
    # 256-character windows did not), in 11-22 minutes a family; the budget keeps both within
    # about 45. With 2,200 pieces (one per 400 characters) the Transformer reached 66.3 against
    # 64.4, the RNN 11.7: a denoiser restores short pieces better, so one per 1,000 characters.
    size_rule = SizeRule(base_tokens=100_000)
    window_chars = 128
    characters_per_piece = 1000
    decode_examples = 300
    train_minutes = 18.0

    def noise(self, run: TrainerRun, subword_model: bytes) -> Any:
        """BART's noise (`config.denoise`), drawn afresh for every example each epoch."""
        from models.layers.denoising import Noise
        from models.layers.subword import MASK, piece_id

        return Noise(mask_id=piece_id(subword_model, MASK), **run.settings["denoise"])


SEQ2SEQ, DENOISE = Seq2Seq(), Denoise()
