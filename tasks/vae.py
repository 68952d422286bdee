"""The VAE family's branch of the language-model task: a variational autoencoder of the text.

Trained on the reconstruction of its own tokens plus the KL term (`models.families.hvae`), evaluated on
negative ELBO per token, an upper bound on the cross-entropy, so it stands beside the language
models' number and must beat the same unigram baseline. The report shows each eval text's
reconstruction from its code and an interpolation between two codes.
"""

from __future__ import annotations

import math
from typing import Any

from tasks import samples as sample_io
from tasks.base import TrainerRun, TrainingData
from tasks.document import Block, Table
from tasks.language_model import UNIGRAM_METRICS_MODULE, LanguageModel

VAE_METRICS_MODULE = "components.evaluation.vae_metrics"
INTERPOLATION_STEPS = 5


class VAE(LanguageModel):
    name = "vae"
    run_task = False  # the language-model task's branch of a family whose objective is a VAE
    variants: dict[str, str] = {}
    nats_per_token = "negative_elbo_per_token"
    eval_signature = "evaluate"  # it also returns what serving does not need: greedy reconstructions, mu
    metrics = (
        (VAE_METRICS_MODULE, {
            "NegativeElboPerToken": "negative_elbo_per_token", "KLPerSequence": "kl_per_sequence",
            "ReconstructionAccuracy": "reconstruction_accuracy",
            "SampledReconstructionAccuracy": "sampled_reconstruction_accuracy", "ActiveUnits": "active_units",
            "ShuffledZSampledAccuracy": "shuffled_z_sampled_accuracy", "EditSimilarity": "edit_similarity",
            "ShuffledZEditSimilarity": "shuffled_z_edit_similarity", "ShuffledZNllGap": "shuffled_z_nll_gap",
        }),
        (UNIGRAM_METRICS_MODULE, {"UnigramCrossEntropy": "unigram_cross_entropy",
                                  "NegativeElboBelowUnigram": "negative_elbo_below_unigram"}),
    )
    # the negative ELBO bounds the cross-entropy per token from above: the same limits judge it
    judged, below_unigram, judged_words = "negative_elbo_per_token", "negative_elbo_below_unigram", "negative ELBO"
    # A run of the VAE alone cuts plain text into windows of 63 characters, 64 tokens with the end
    # token (4 segments of 16), which `bench.hvae` reconstructs in 1,250 steps (about 12 passes
    # of Tiny Shakespeare's windows); 64 characters would add a fifth segment for the end token
    window_chars = 63
    train_epochs = 12.0
    train_minutes = 18.0

    def headline(self, metrics: dict[str, float]) -> str:
        m = metrics
        return (
            f"negative ELBO {m.get('negative_elbo_per_token', math.nan):.4f} nats/token (bounds cross-entropy), "
            f"KL {m.get('kl_per_sequence', math.nan):.2f} nats/text, reconstruction accuracy "
            f"{m.get('reconstruction_accuracy', math.nan):.3f} teacher-forced / "
            f"{m.get('sampled_reconstruction_accuracy', math.nan):.3f} sampled "
            f"({m.get('shuffled_z_sampled_accuracy', math.nan):.3f} from another text's z), edit similarity "
            f"{m.get('edit_similarity', math.nan):.3f}, z worth {m.get('shuffled_z_nll_gap', math.nan):.2f} nats/text, "
            f"{int(m.get('active_units', 0))} active latent units"
        )

    def samples(self, model_path: str, split_uri: str, data: Any, count: int) -> list[dict]:
        """Per example: its text and the greedy decode from its mu (`encode`, `decode`); the first
        sample also holds the interpolation from the first example's code to the second's
        (`interpolate`, `INTERPOLATION_STEPS` texts)."""
        import tensorflow as tf

        records = sample_io.split_records(split_uri, count)
        model = sample_io.load_model(model_path)
        if not records or "interpolate" not in model.signatures:
            return []
        texts = sample_io.texts(records, data.first_text_column)
        mu = model.signatures["encode"](text=tf.constant(texts))["mu"]
        decoded = model.signatures["decode"](z=mu, temperature=tf.constant(0.0), seed=tf.constant(0, tf.int64))["text"]
        samples = [{"text": t, "reconstruction": r.decode("utf-8", errors="replace")} for t, r in zip(texts, decoded.numpy())]
        if len(texts) >= 2:
            line = model.signatures["interpolate"](first=tf.constant(texts[:1]), second=tf.constant(texts[1:2]),
                                                   steps=tf.constant(INTERPOLATION_STEPS))["texts"]
            samples[0]["interpolation"] = [t.decode("utf-8", errors="replace") for t in line.numpy()[0]]
        return samples

    def report_blocks(self, family: dict) -> list[Block]:
        samples = family.get("samples") or []
        if not samples:
            return []
        blocks: list[Block] = [
            "What its code holds: each eval text (the model reads its first transform.sequence_length tokens) and "
            "the text decoded greedily from its mean code.",
            Table(["text", "reconstruction"], [[s["text"][:300], s["reconstruction"]] for s in samples]),
        ]
        line = samples[0].get("interpolation")
        if line:
            blocks += ["Interpolation: texts decoded from evenly spaced points on the line from the first text's "
                       "code to the second's.",
                       Table(["point", "text"], [[f"{i}/{len(line) - 1}", t] for i, t in enumerate(line)])]
        return blocks

    def training_data(self, run: TrainerRun) -> TrainingData:
        """(target_ids, target_ids): it reconstructs the text it reads, a segment at a time."""
        from models.layers.tokens import model_vocab_size

        return TrainingData(model_vocab_size(run.vocabulary_size()), ("target_ids", "target_ids"),
                            length_multiple=run.hparams.segment_length)

    def fit_settings(self, run: TrainerRun, model: Any) -> tuple[list, int]:
        """The model's beta annealing, and early stopping that ignores the autoencoder warm-up."""
        return model.training_callbacks(), run.hparams.warmup_steps

    def export(self, run: TrainerRun, model: Any, data: TrainingData) -> None:
        from models.serving.vae_export import export_vae

        self._export_with_codec(run, model, export_vae)


TASK = VAE()
