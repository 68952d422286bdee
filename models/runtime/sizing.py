"""Model sizes: each family names its settings at `small`, `base` and (the encoder-decoders'
families) `large`, and `size: auto` picks one by the training split's size, read through the
task's `SizeRule`: the same config trains a 100-review sample and a 30,000-pair translation
corpus sensibly, and a translator of a corpus gets more capacity than a language model of it.

A size-governed setting left null takes the size's value; a value set in the config wins. A
config built in code (tests, benchmarks) defaults to `small`; the shipped config says `auto`,
which the Trainer resolves once it has counted the training split (`sized`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Optional

from models.runtime.training_length import TrainingLengthConfig

SIZES = ("auto", "small", "base", "large")


@dataclasses.dataclass(frozen=True)
class SizeRule:
    """How many training tokens (the real tokens a model reads and predicts: both sides of a
    pair) `size: auto` needs for each size above `small`; a task says, since what a model can
    learn from a corpus depends on the task as much as on the corpus. Tokens rather than texts:
    84 long reviews and 5,000 short phrases hold about as many."""

    base_tokens: int
    large_tokens: Optional[int] = None  # None: auto never picks large

    def pick(self, tokens: Optional[int], sizes: tuple[str, ...]) -> str:
        """The largest of `sizes` (a family's, smallest first) the corpus has tokens for; unknown: the smallest."""
        wanted = "small"
        if tokens is not None and tokens >= self.base_tokens:
            wanted = "large" if self.large_tokens is not None and tokens >= self.large_tokens else "base"
        return at_most(wanted, sizes)

    def reachable(self, sizes: tuple[str, ...]) -> tuple[str, ...]:
        """The sizes of `sizes` that `auto` may pick under this rule."""
        wanted = ("small", "base", "large") if self.large_tokens is not None else ("small", "base")
        return tuple(dict.fromkeys(at_most(size, sizes) for size in wanted))

    def describe(self, size: str) -> str:
        """When `auto` picks `size`, in words (for an error at a size `auto` may pick)."""
        if size == "small":
            return f"below {self.base_tokens:,} training tokens"
        if size == "base":
            return f"from {self.base_tokens:,} training tokens" + (
                f" up to {self.large_tokens:,}" if self.large_tokens is not None else "")
        return f"from {self.large_tokens:,} training tokens"


def at_most(size: str, sizes: tuple[str, ...]) -> str:
    """The largest of `sizes` no larger than `size` (a family without `large` trains at `base`)."""
    allowed = [s for s in sizes if SIZES.index(s) <= SIZES.index(size)]
    return allowed[-1] if allowed else sizes[0]


DEFAULT_RULE = SizeRule(base_tokens=500_000)  # a config sized without a task (benchmarks, tests)


@dataclasses.dataclass
class SizedConfig(TrainingLengthConfig):
    """A family config whose size-governed settings (`SIZE_PRESETS`) come from `size` unless set."""

    SIZE_PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"small": {}, "base": {}}
    size: str = "small"  # auto | small | base | large (where the family has it)

    def __post_init__(self) -> None:
        if self.size != "auto" and self.size not in self.SIZE_PRESETS:
            raise ValueError(f"size must be auto or one of this family's sizes ({', '.join(self.SIZE_PRESETS)}), "
                             f"got {self.size!r}")
        if self.size != "auto":
            for name, value in self.SIZE_PRESETS[self.size].items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        super().__post_init__()

    def every_size(self, rule: SizeRule = DEFAULT_RULE) -> list["SizedConfig"]:
        """This config as each size could make it: itself when the size is fixed, else one for each
        size `auto` may pick under `rule`. Each is built now, so a setting that a size's presets
        make invalid (a width that the preset's heads do not divide) raises before any data is counted."""
        if self.size != "auto":
            return [self]
        configs = []
        for size in rule.reachable(tuple(self.SIZE_PRESETS)):
            try:
                configs.append(dataclasses.replace(self, size=size))
            except ValueError as err:
                raise ValueError(f"at size {size}, which `size: auto` picks {rule.describe(size)}: {err}") from err
        return configs

    def sized(self, train_tokens: Optional[int] = None, rule: SizeRule = DEFAULT_RULE) -> "SizedConfig":
        """This config with `auto` resolved for a training split of `train_tokens` tokens under
        the task's `rule` (unknown: small); a config with a fixed size comes back as it is."""
        if self.size != "auto":
            return self
        return dataclasses.replace(self, size=rule.pick(train_tokens, tuple(self.SIZE_PRESETS)))
