"""`training.init_from` resolved before anything runs: each named pushed model's version folder
and description, checked against the run it would start.

A model starts the family it is of (its description says which); the run must train that
family, for a task that can start from the model's kind (`models.transfer.TRANSFERS`), tokenize
as the model did, and, as the run has one Transform, every model it starts from must share one
vocabulary. Each mistake is a ConfigError that names the model and what differs.
"""

from __future__ import annotations

import filecmp
import os
from typing import Optional

from components.training.model_description import read_description, vocabulary_path
from models.transfer import TRANSFERS, keeps_lm_loss, positions_needed
from operations.promotion import LABELS, PromotionError, check_model_name, resolve_version
from pipeline.config import Config, ConfigError
from pipeline.fine_tuning import PushedModel


def parse_reference(reference: str) -> tuple[str, Optional[int], Optional[str]]:
    """`MODEL`, `MODEL@VERSION` or `MODEL@LABEL` -> (name, version, label)."""
    name, _, which = reference.partition("@")
    if not which:
        return name, None, None
    if which.isdigit():
        return name, int(which), None
    if which not in LABELS:
        raise ConfigError(f"training.init_from {reference!r}: after '@' comes a version number or a label "
                          f"({', '.join(LABELS)}), got {which!r}")
    return name, None, which


def resolve_init_from(config: Config) -> dict[str, PushedModel]:
    """The pushed model each family starts from, by family (empty when `init_from` is)."""
    serving_dir = os.path.abspath(config.serving_dir)
    starts: dict[str, PushedModel] = {}
    for reference in config.training.init_from:
        name, version, label = parse_reference(reference)
        try:
            check_model_name(serving_dir, name)
            version = resolve_version(serving_dir, name, version, label)
            path = os.path.join(serving_dir, name, str(version))
            description = read_description(path)
        except (PromotionError, ValueError) as err:
            raise ConfigError(f"training.init_from {reference!r}: {err}") from None
        start = PushedModel(name, version, path, description)
        family = description["family"]
        _check(config, reference, start, starts.get(family))
        starts[family] = start
    _check_one_vocabulary(starts)
    return starts


def _check(config: Config, reference: str, start: PushedModel, earlier: Optional[PushedModel]) -> None:
    d = start.description
    what = f"training.init_from {reference!r} (a {d['family']} {d['kind']})"
    if earlier is not None:
        raise ConfigError(f"{what}: {earlier.name} version {earlier.version} already starts the {d['family']} family")
    if d["family"] not in config.trained_families:
        raise ConfigError(f"{what}: this run does not train the {d['family']} family "
                          f"(it trains: {', '.join(config.trained_families) or 'none'})")
    kind = config.task_mode.model_kind(d["family"])
    if (d["kind"], kind) not in TRANSFERS:
        starts = sorted(f"a {to} from a {frm}" for frm, to in TRANSFERS)
        raise ConfigError(f"{what}: a {kind} cannot start from a {d['kind']} (what can: {', '.join(starts)})")
    if config.training.lm_weight and not keeps_lm_loss(d["kind"], kind):
        raise ConfigError(f"{what}: training.lm_weight keeps a language model's loss under a new classifier head; "
                          f"a {kind} from a {d['kind']} has none")
    earlier_start = d.get("initialised_from")
    if earlier_start and earlier_start.get("new_layers"):
        raise ConfigError(f"{what} is itself {earlier_start['model']}'s layers under a new head, which the registry "
                          f"does not build; start from {earlier_start['model']} version {earlier_start['version']}")
    needed = positions_needed(d["kind"], kind, config.transform.sequence_length)
    if d["hparams"].get("context") and needed > d["hparams"]["context"]:
        raise ConfigError(f"{what} reads at most {d['hparams']['context']} positions (its context); this run's "
                          f"{kind} gives it {needed} (transform.sequence_length {config.transform.sequence_length}): "
                          f"set --sequence-length {config.transform.sequence_length - needed + d['hparams']['context']}")
    run = (config.transform.tokenizer, config.transform.lowercase)
    if (d["tokenizer"], d["lowercase"]) != run:
        raise ConfigError(f"{what} reads {d['tokenizer']} tokens{', lowercased' if d['lowercase'] else ''}; this run "
                          f"reads {run[0]} tokens{', lowercased' if run[1] else ''}: a fine-tuned model must tokenize "
                          f"as it was pre-trained (--tokenizer {d['tokenizer']}"
                          f"{' --lowercase' if d['lowercase'] else ''})")


def _check_one_vocabulary(starts: dict[str, PushedModel]) -> None:
    """Every model a run starts from has the same vocabulary file (the run's Transform reads one)."""
    files = {family: vocabulary_path(s.path, s.description) for family, s in starts.items()}
    for family, path in files.items():
        if not os.path.isfile(path):
            raise ConfigError(f"training.init_from {starts[family].name}: its vocabulary {path} is missing")
    first = next(iter(files.values()), None)
    different = [family for family, path in files.items() if not filecmp.cmp(first, path, shallow=False)]
    if different:
        raise ConfigError(f"training.init_from: {', '.join(starts[f].name for f in different)} "
                          f"{'has' if len(different) == 1 else 'have'} another vocabulary than "
                          f"{starts[next(iter(files))].name}; one run tokenizes with one vocabulary")
