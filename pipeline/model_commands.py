"""`textflow models list|show` and `textflow predict`: what a workspace trained, judged and pushed.

They read ML Metadata (`pipeline.model_records`), the serving directory's labels
(`pipeline.promotion`) and the pushed SavedModels; they start no pipeline and write nothing.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Optional

from pipeline.config import Config
from pipeline.metadata_connection import describe
from pipeline.model_records import ModelRecord, model_records
from pipeline.promotion import STATE_FILE, PromotionError, read_state, versions

KEY_METRICS = ("cross_entropy_per_token", "negative_elbo_per_token", "accuracy")


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
        key = next((m for m in KEY_METRICS if m in r.metrics), None)
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
        *[f"    {metric} {value:.4f}" for metric, value in sorted(r.metrics.items())],
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
    lines += [
        f"  trained at {_stamp(r.trained_at)}: {r.uri}",
        f"  data span: {r.data_span if r.data_span is not None else 'unknown'}",
        *[f"  {key}: {', '.join(uris)}" for key, uris in sorted(r.trainer_inputs.items())],
    ]
    return "\n".join(lines)


def predict(config: Config, serving_dir: str, name: str, version: Optional[int], label: Optional[str], text: str,
            text_column: Optional[str]) -> str:
    """Loads a pushed model the way TensorFlow Serving does (its SavedModel signatures, no
    project code) and returns what `serving_default` answers for one text."""
    if label:
        entry = read_state(serving_dir).get(name)
        version = entry.labels.get(label) if entry else None
        if version is None:
            raise PromotionError(f"{name} has no '{label}' label in {os.path.join(serving_dir, STATE_FILE)}")
    pushed = versions(serving_dir, name)
    version = version if version is not None else (pushed[-1] if pushed else None)
    if version not in pushed:
        raise PromotionError(f"{name} has no pushed version {version} under {serving_dir} "
                             f"(pushed: {', '.join(map(str, pushed)) or 'none'})")
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the word tokenizer's ops, as TensorFlow Serving has them)

    path = os.path.join(serving_dir, name, str(version))
    try:
        model = tf.saved_model.load(path)
    except (ValueError, OSError, tf.errors.OpError) as err:
        raise PromotionError(f"{path} is not a SavedModel TensorFlow can load: {str(err).splitlines()[0]}") from None
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))
    example = tf.train.Example(features=tf.train.Features(feature={text_column or config.data.text_column: feature}))
    outputs = model.signatures["serving_default"](examples=tf.constant([example.SerializeToString()]))

    def plain(value: Any) -> Any:
        value = value.numpy()[0].tolist() if hasattr(value, "numpy") else value
        return [plain(v) for v in value] if isinstance(value, list) else value.decode() if isinstance(value, bytes) else value

    lines = [f"{name} version {version}, serving_default:"]
    lines += [f"  {key}: {json.dumps(plain(value))}" for key, value in sorted(outputs.items())]
    return "\n".join(lines)
