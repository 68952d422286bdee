"""Fine-tuning's settings: the pushed models families start from (`training:`), and such a
model once resolved in the serving directory (`operations.pretrained`)."""

from __future__ import annotations

import dataclasses

from models.transfer import POOLINGS


@dataclasses.dataclass
class TrainingConfig:
    """How the Trainers start: the random seed, the families that start from pushed models'
    weights (fine-tuning) instead of random ones, and how many processes each trains with."""

    # every random generator's in the Trainers (initial weights, dropout, the training data's
    # order): runs that differ only in it measure how much a result owes to chance
    seed: int = 0

    # pushed models, each `MODEL`, `MODEL@VERSION` or `MODEL@LABEL` (latest, a version, a promotion
    # label); each starts the family it is of, with this run's task head on it
    init_from: list[str] = dataclasses.field(default_factory=list)
    # the loaded layers' learning rate, as a share of the family's: on SST-2 a classifier from a
    # language model at 0.1 fitted far less (validation loss 0.45 against 0.25 at 1.0)
    loaded_rate: float = 1.0
    frozen_steps: int = 0  # steps the loaded layers wait while the new head learns alone
    # a classifier from a language model: the weight of the language model's own loss, kept as an
    # auxiliary term of the training loss (GPT's recipe: 0.5); 0 leaves it out
    lm_weight: float = 0.0
    # a classifier from a language model: how it reads the hidden states (models.transfer.POOLINGS):
    # max over the text's positions, the last position's (GPT's: a causal model has read the whole
    # text there), or both side by side
    pooling: str = "max"
    # processes each Trainer trains with, under MultiWorkerMirroredStrategy: a local run starts
    # them on this machine over loopback (components.training.workers), a Kubeflow run as a TFJob
    workers: int = 1
    worker_restarts: int = 2  # times a cluster with a failed worker starts again, from its last backup

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"training.workers must be at least 1, got {self.workers}")
        if self.worker_restarts < 0:
            raise ValueError(f"training.worker_restarts must be 0 or more, got {self.worker_restarts}")
        if not 0.0 < self.loaded_rate <= 1.0:
            raise ValueError(f"training.loaded_rate must be in (0, 1], got {self.loaded_rate}")
        if self.seed < 0:
            raise ValueError(f"training.seed must be 0 or more, got {self.seed}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"training.pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.lm_weight < 0:
            raise ValueError(f"training.lm_weight must be 0 or more, got {self.lm_weight}")
        if self.frozen_steps < 0:
            raise ValueError(f"training.frozen_steps must be 0 or more, got {self.frozen_steps}")


@dataclasses.dataclass
class PushedModel:
    """A pushed version a family starts from: `training.init_from` resolved in the serving directory."""

    name: str
    version: int
    path: str  # the version's SavedModel folder
    description: dict  # its `assets.extra/textflow_model.json`
