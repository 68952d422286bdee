"""Model sizes: each family names its `small` and `base` settings, and `size: auto` picks one by
the size of the training split, so the same config trains a 100-review sample and a 60,000-text
corpus sensibly.

A size-governed setting left null takes the size's value; a value set in the config wins. A
config built in code (tests, benchmarks) defaults to `small`; the shipped config says `auto`,
which the Trainer resolves once it has counted the training split (`sized`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Optional

from models.runtime.training_length import TrainingLengthConfig

SIZES = ("auto", "small", "base")
AUTO_BASE_EXAMPLES = 5000  # size auto: base from this many training texts, small below


@dataclasses.dataclass
class SizedConfig(TrainingLengthConfig):
    """A family config whose size-governed settings (`SIZE_PRESETS`) come from `size` unless set."""

    SIZE_PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"small": {}, "base": {}}
    size: str = "small"  # auto | small | base

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")
        if self.size != "auto":
            for name, value in self.SIZE_PRESETS[self.size].items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        super().__post_init__()

    def every_size(self) -> list["SizedConfig"]:
        """This config as each size could make it: itself when the size is fixed, else one for each
        size `auto` may pick. Each is built now, so a setting that a size's presets make invalid
        (a width that the preset's heads do not divide) raises before any data is counted."""
        if self.size != "auto":
            return [self]
        configs = []
        for size in ("small", "base"):
            try:
                configs.append(dataclasses.replace(self, size=size))
            except ValueError as err:
                picked = "below" if size == "small" else "from"
                raise ValueError(f"at size {size}, which `size: auto` picks {picked} {AUTO_BASE_EXAMPLES:,} training "
                                 f"texts: {err}") from err
        return configs

    def sized(self, train_examples: Optional[int] = None) -> "SizedConfig":
        """This config with `auto` resolved for a training split of `train_examples` texts
        (unknown: small); a config with a fixed size comes back as it is."""
        if self.size != "auto":
            return self
        size = "base" if train_examples is not None and train_examples >= AUTO_BASE_EXAMPLES else "small"
        return dataclasses.replace(self, size=size)
