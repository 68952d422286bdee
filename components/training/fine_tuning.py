"""A Trainer that starts from a pushed model (`training.init_from`, `--init-from`).

The pipeline imports the pushed version as a Model artifact and hands it to the Trainer as TFX's
`base_model`, so ML Metadata records it as an input of the fine-tuned model. The Trainer reads
the model's description (`model_description`), rebuilds it with its weights and puts the task's
new head on it (`models.transfer`); the loaded layers learn at `loaded_rate` times the family's
learning rate, after waiting `frozen_steps` steps while the head learns alone. The run's
Transform tokenized with the pushed model's vocabulary, so the ids mean what they meant.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import tensorflow as tf

from components.training.model_description import read_description
from models.runtime.acceleration_trial import Choice
from models.transfer import Head, fine_tuned, loaded_and_new


class StartingPoint:
    """The pushed model a Trainer starts from, and what it loaded of it."""

    def __init__(self, path: str, description: dict[str, Any], settings: dict[str, Any]):
        self.path, self.description = path, description
        self.settings = settings  # the pipeline's `_fine_tuning_settings`: the model's name and version, the rates
        self.loaded_layers: list[str] = []
        self.new_layers: list[str] = []
        self._loaded_weights: list[tf.Variable] = []

    def acceleration(self, setup: Any) -> Choice:
        """Float32 without XLA where they are `auto`: the timed trial builds the registry's models,
        not this one. Set values are kept."""
        hparams = setup.hparams
        precision = "float32" if hparams.precision == "auto" else hparams.precision
        jit_compile = False if hparams.jit_compile == "auto" else hparams.jit_compile
        setup.hparams = dataclasses.replace(hparams, precision=precision, jit_compile=jit_compile)
        return Choice(precision, jit_compile, "fine-tuning a pushed model: no timed trial (it times the models "
                      "the registry builds); float32 without XLA unless set")

    def build(self, kind: str, num_classes: int, hparams: Any) -> Any:
        d = self.description
        head = Head(dropout=getattr(hparams, "dropout", None) or 0.0, lm_weight=self.settings.get("lm_weight", 0.0),
                    pooling=self.settings.get("pooling", "max"), characters=getattr(hparams, "characters", "cnn"))
        model, pretrained = fine_tuned(kind, d["family"], d["kind"], d["hparams"], d["vocab_size"], self.path,
                                       num_classes, head)
        self.loaded_layers, self.new_layers = loaded_and_new(model, pretrained)
        self._loaded_weights = [w for name in self.loaded_layers for w in model.get_layer(name).trainable_weights]
        return model

    def group_loaded_layers(self, model: Any) -> None:
        """The loaded layers' learning rate and frozen steps (`models.runtime.fused_adam`)."""
        model.optimizer.scale_learning_rate(self._loaded_weights, self.settings["loaded_rate"],
                                            self.settings["frozen_steps"])

    def record(self) -> dict[str, Any]:
        """What `training_metrics.json` keeps of the start: for the summary, the report and `models show`."""
        d, settings = self.description, self.settings
        return {"model": settings.get("model"), "version": settings.get("version"), "path": self.path,
                "task": d["task"], "kind": d["kind"], "size": d["hparams"].get("size"),
                "trained_on": d.get("trained_on", {}),
                "loaded_layers": self.loaded_layers, "new_layers": self.new_layers,
                "loaded_rate": settings["loaded_rate"], "frozen_steps": settings["frozen_steps"],
                "lm_weight": settings.get("lm_weight", 0.0), "pooling": settings.get("pooling", "max"),
                # the whole model carried on (BART's translator): its settings rebuild it, as the pushed model's did
                **({"architecture": d["hparams"]} if not self.new_layers else {})}


def starting_point(fn_args: Any, vocab_size: int) -> Optional[StartingPoint]:
    """The Trainer's `base_model`, if it has one. An imported pushed version is the SavedModel
    folder itself (a Trainer's Model artifact keeps it in `Format-Serving/`)."""
    if not fn_args.base_model:
        return None
    path = fn_args.base_model
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        path = os.path.dirname(path)
    description = read_description(path)
    if description["vocab_size"] != vocab_size:
        raise ValueError(f"{path} reads {description['vocab_size']} token ids, this run's Transform gives "
                         f"{vocab_size}: the run must tokenize with the pushed model's vocabulary")
    return StartingPoint(path, description, fn_args.custom_config["fine_tuning"])
