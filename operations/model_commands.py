"""`textflow models list|show` and `textflow predict`: what a workspace trained, judged and pushed.

They read ML Metadata (`operations.model_records`), the serving directory's labels
(`operations.promotion`) and the pushed SavedModels; they start no pipeline and write nothing.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Optional

from components.training.model_description import read_description
from operations.model_records import ModelRecord, model_records
from operations.promotion import PromotionError, read_state, resolve_version
from operations.summary import describe_start
from pipeline.config import Config
from pipeline.metadata_connection import describe
from tasks import registry as tasks
from tasks.document import is_detail_metric


def _stamp(seconds: Optional[float]) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M") if seconds else "-"


def _serving_check(record: ModelRecord) -> str:
    """The serving check's verdict in a word: pass, FAIL, or - (not checked)."""
    found = record.serving_check
    if found is None:
        return "-"
    return "pass" if found["blessed"] else "FAIL"


def _labels(serving_dir: str) -> dict[str, dict[str, int]]:
    return {name: entry.labels for name, entry in read_state(serving_dir).items()}


def list_models(config: Config, serving_dir: str) -> str:
    """One line per trained model: name, version, key metric, blessing, serving check, push, labels."""
    records = model_records(config)
    if not records:
        return f"no trained models in {describe(config)}"
    labels = _labels(serving_dir)
    lines = [f"{'model':<28} {'version':>10}  {'trained':<16}  {'key metric':<34} {'blessed':<8} {'serves':<7} "
             f"{'pushed':<16}  labels"]
    for r in records:
        name = os.path.basename(os.path.dirname(r.destination)) if r.destination else f"{config.name}-{r.branch.replace('_', '-')}"
        key = tasks.of_branch(r.branch).key_metric(r.metrics)
        metric = f"{key} {r.metrics[key]:.4f}" if key else "-"
        blessed = {True: "yes", False: "no", None: "-"}[r.blessed]
        held = ",".join(label for label, v in labels.get(name, {}).items() if v == r.version) or "-"
        lines.append(f"{name:<28} {r.version or '-':>10}  {_stamp(r.trained_at):<16}  {metric:<34} {blessed:<8} "
                     f"{_serving_check(r):<7} {_stamp(r.pushed_at):<16}  {held}")
    return "\n".join(lines)


def show_model(config: Config, serving_dir: str, name: str, version: int) -> str:
    """Everything known about one pushed model, its lineage included."""
    matches = [r for r in model_records(config) if r.destination and r.destination.endswith(os.path.join(name, str(version)))]
    if not matches:
        raise PromotionError(f"no run of {describe(config)} pushed {name} version {version}")
    r = matches[-1]
    held = [label for label, v in _labels(serving_dir).get(name, {}).items() if v == r.version]
    lines = [
        f"{name} version {r.version} ({r.branch})",
        f"  pushed to {r.destination} at {_stamp(r.pushed_at)}; labels: {', '.join(held) or 'none'}",
        f"  blessed: {'yes' if r.blessed else 'no'}; evaluation {r.evaluation_uri}",
        *[f"    {metric} {value:.4f}" for metric, value in sorted(r.metrics.items()) if not is_detail_metric(metric)],
    ]
    found = r.serving_check
    if found is None:
        lines.append("  serving check: not run")
    else:
        latency = found.get("latency") or {}
        lines.append(f"  serving check: {'passed' if found['blessed'] else 'FAILED'}; serving_default p50 "
                     f"{latency.get('p50_ms', float('nan')):.1f} ms, p99 {latency.get('p99_ms', float('nan')):.1f} ms; "
                     f"model loaded in {found.get('load_seconds', float('nan')):.1f} s")
        lines += [f"    {signature}: outputs {entry['outputs']}" for signature, entry in sorted(found.get("signatures", {}).items())]
        lines += [f"    problem: {problem}" for problem in found["problems"]]
    start = _initialised_from(r)
    lines += [
        f"  trained at {_stamp(r.trained_at)}: {r.uri}",
        *([f"  {describe_start(start)}"] if start else []),
        f"  data span: {r.data_span if r.data_span is not None else 'unknown'}",
        *[f"  {key}: {', '.join(uris)}" for key, uris in sorted(r.trainer_inputs.items())],
    ]
    return "\n".join(lines)


def _initialised_from(record: ModelRecord) -> Optional[dict]:
    """The pushed model a fine-tuned model started from, from the description its Trainer wrote."""
    try:
        return read_description(record.destination or os.path.join(record.uri, "Format-Serving")).get("initialised_from")
    except ValueError:  # exported before models were described: no lineage to tell
        return None


# Values for the decoding settings a signature may take, when the command line leaves them out.
INPUT_DEFAULTS = {"max_new_tokens": 40, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "beam_width": 1, "seed": 0,
                  "max_length": 100, "steps": 5, "num_samples": 1}
TEXT_INPUTS = ("text", "prompt", "source")  # the string input `--text` fills
# what `predict` calls when no signature is named: an encoder-decoder translates, a tagger tags raw text
DEFAULT_SIGNATURES = ("translate", "tag")


def predict(config: Config, serving_dir: str, name: str, version: Optional[int], label: Optional[str], text: Optional[str],
            text_column: Optional[str], signature: Optional[str] = None,
            options: Optional[dict[str, str]] = None) -> str:
    """Loads a pushed model the way TensorFlow Serving does (its SavedModel signatures, no
    project code) and returns what `signature` answers. Its inputs come from the SavedModel:
    serialized examples are built from `text`; a string input is `--text` (or its own option,
    as `interpolate`'s `--first`/`--second`); a number or a vector (comma-separated) is its
    own option (`max_new_tokens` from `--max-new-tokens`), decoding settings defaulting to
    `INPUT_DEFAULTS`. Without `signature`: `translate` for an encoder-decoder (the text is its
    source), `tag` for a tagger (word/tag pairs first), else `serving_default`."""
    options = dict(options or {})
    version = resolve_version(serving_dir, name, version, label)
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizers' ops, as TensorFlow Serving has them)

    path = os.path.join(serving_dir, name, str(version))
    try:
        model = tf.saved_model.load(path)
    except (ValueError, OSError, tf.errors.OpError) as err:
        raise PromotionError(f"{path} is not a SavedModel TensorFlow can load: {str(err).splitlines()[0]}") from None
    if signature is None:
        signature = next((name for name in DEFAULT_SIGNATURES if name in model.signatures), "serving_default")
    if signature not in model.signatures:
        raise PromotionError(f"{name} version {version} has no signature {signature!r} "
                             f"(it has: {', '.join(sorted(model.signatures))})")
    function = model.signatures[signature]
    specs = function.structured_input_signature[1]
    unknown = sorted(set(options) - set(specs))
    if unknown:
        raise PromotionError(f"signature {signature!r} of {name} takes no input {', '.join(unknown)} "
                             f"(its inputs: {_options_of(specs)})")
    strings = [key for key, spec in specs.items() if spec.dtype == tf.string and key != "examples"]
    values = {}
    for key, spec in specs.items():
        if key == "examples":
            if text is None:
                raise PromotionError(f"signature {signature!r} reads a text: give --text")
            values[key] = tf.constant([_example(text, text_column or config.data.first_text_column)])
        elif spec.dtype == tf.string:
            given = options.get(key, text if key in TEXT_INPUTS or len(strings) == 1 else None)
            if given is None:
                raise PromotionError(f"signature {signature!r} needs --{key.replace('_', '-')} (its inputs: {_options_of(specs)})")
            values[key] = tf.constant([given] if spec.shape.rank == 1 else [given.split()])  # rank 2: a token list
        else:
            values[key] = _number_input(key, spec, options.get(key, INPUT_DEFAULTS.get(key)), signature, specs)
    outputs = function(**values)
    lines = [f"{name} version {version}, {signature}:"]
    shown = dict(outputs)
    if "tokens" in outputs and "tags" in outputs:  # a tagger's answer: each word with its tag
        lines += [f"  {' '.join(f'{w.decode()}/{t.decode()}' for w, t in zip(words, tags) if w)}"
                  for words, tags in zip(shown.pop("tokens").numpy(), shown.pop("tags").numpy())]
    for key, value in sorted(shown.items()):
        lines += _shown(key, value.numpy())
    return "\n".join(lines)


def _options_of(specs: dict) -> str:
    return ", ".join("--text" if key == "examples" else f"--{key.replace('_', '-')}" for key in specs)


def _example(text: str, text_column: str) -> bytes:
    import tensorflow as tf

    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature={text_column: feature})).SerializeToString()


def _number_input(key: str, spec: Any, given: Any, signature: str, specs: dict) -> Any:
    """A scalar, or a batch of one vector from comma-separated numbers, in the input's dtype."""
    import numpy as np
    import tensorflow as tf

    if given is None:
        raise PromotionError(f"signature {signature!r} needs --{key.replace('_', '-')} (its inputs: {_options_of(specs)})")
    try:
        numbers = [float(v) for v in str(given).split(",")]
    except ValueError:
        raise PromotionError(f"--{key.replace('_', '-')} takes numbers, got {given!r}") from None
    if spec.shape.rank == 0:
        if len(numbers) != 1:
            raise PromotionError(f"--{key.replace('_', '-')} takes one number, got {given!r}")
        value: Any = numbers[0]
    else:
        width = spec.shape[-1]
        if width is not None and len(numbers) != width:
            raise PromotionError(f"--{key.replace('_', '-')} takes {width} comma-separated numbers, got {len(numbers)}")
        value = [numbers] if spec.shape.rank == 2 else numbers
    if spec.dtype.is_integer:
        if any(n != int(n) for n in np.ravel(value)):
            raise PromotionError(f"--{key.replace('_', '-')} takes whole numbers, got {given!r}")
        value = np.asarray(value).astype(np.int64)
    return tf.constant(value, dtype=spec.dtype)


def _shown(key: str, value: Any) -> list[str]:
    """An output as lines: strings as text (one line per row), numbers as JSON."""
    rows = value.tolist() if hasattr(value, "tolist") else value
    rows = rows[0] if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], list) else rows
    if isinstance(rows, list) and rows and all(isinstance(r, bytes) for r in rows):
        texts = [r.decode("utf-8", "replace") for r in rows]
        return [f"  {key}: {texts[0]}"] if len(texts) == 1 else [f"  {key}:"] + [f"    {t}" for t in texts]
    if isinstance(rows, bytes):
        return [f"  {key}: {rows.decode('utf-8', 'replace')}"]
    if isinstance(rows, list) and len(rows) == 1:
        rows = rows[0]
    return [f"  {key}: {json.dumps(rows)}"]
