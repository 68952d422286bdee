"""The Trainer's input pipeline: transformed examples (TFRecords) -> training batches, in tf.data.

Why each step is there:
- the split's files are read in parallel, and records are parsed a few hundred at a time in
  parallel map calls (one `parse_example` per record is the slow way);
- the serialized split is cached in memory when it fits, so later epochs skip disk and gunzip;
- records are shuffled through a bounded buffer and repeated without end (the Trainer counts
  steps, not epochs);
- texts of similar length share a batch (`bucket`), and every batch is cut at the first bucket
  edge that holds its longest text, so little compute goes to padding. Edges are few and are
  multiples of `length_multiple` (the VAE's segment length), so a jit-compiled step compiles
  for a handful of shapes only;
- batches are prefetched, so the next one is ready when a step ends;
- the reads and maps run at a fixed parallelism (one call per core), with tf.data's autotuning
  off (`training_data.autotune`): with it on, a Trainer's `fit` sometimes stalled about 40 s at
  its end while the iterator waited for the autotuning thread (3 of 9 default rnn Trainers here,
  0 of 5 with it off), and float32 steps ran in a slow mode in about half of all processes
  (README, "Precision, XLA and batching").

Cutting padding off changes no result: ids are right-padded with 0, the language models are
causal, the encoders mask padding, and every loss counts real tokens only.
TensorFlow is imported when a dataset is built, so the config can name these settings cheaply.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING, Callable, Optional

from models.layers.tokens import PAD_ID

if TYPE_CHECKING:
    import tensorflow as tf

BATCHINGS = ("bucket", "trim", "fixed")
CACHES = ("auto", "memory", "off")
SHARDS = ("data", "file")  # how workers of a cluster split a split: tf.data's auto-shard policies
PARSE_BATCH = 256  # records per parse_example call
LM_LENGTH_MULTIPLE = 8  # batch lengths of the language models and classifiers: multiples of this
PARALLEL_CALLS = os.cpu_count() or 2  # parallel reads and map calls with autotuning off
PREFETCH_BATCHES = 2  # batches prepared ahead of the step with autotuning off


@dataclasses.dataclass
class TrainingDataConfig:
    """How every Trainer reads its split (the `training_data:` section of the project config)."""

    batching: str = "bucket"  # bucket | trim (each batch cut to its longest text) | fixed (full length)
    buckets: int = 8  # bucket edges, evenly spaced up to transform.sequence_length
    shuffle_buffer: int = 10_000  # records
    cache: str = "auto"  # auto: in memory when the split's files total at most cache_limit_mb | memory | off
    cache_limit_mb: int = 512
    autotune: bool = False  # tf.data's autotuning of parallelism and prefetching; off: one call per core
    # several workers (training.workers): data: each reads the whole split and keeps its share of
    # every global batch, which then holds the examples one process's batch would | file: each
    # reads its own files (at least one per worker), batched on its own
    shard: str = "data"

    def __post_init__(self) -> None:
        if self.batching not in BATCHINGS:
            raise ValueError(f"training_data.batching must be one of {', '.join(BATCHINGS)}, got {self.batching!r}")
        if self.shard not in SHARDS:
            raise ValueError(f"training_data.shard must be one of {', '.join(SHARDS)}, got {self.shard!r}")
        if self.cache not in CACHES:
            raise ValueError(f"training_data.cache must be one of {', '.join(CACHES)}, got {self.cache!r}")
        for name in ("buckets", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"training_data.{name} must be at least 1, got {getattr(self, name)}")
        if self.cache_limit_mb < 0:
            raise ValueError(f"training_data.cache_limit_mb must be at least 0, got {self.cache_limit_mb}")


def bucket_edges(sequence_length: int, buckets: int, length_multiple: int) -> list[int]:
    """Batch lengths: `buckets` evenly spaced lengths rounded up to multiples of
    `length_multiple`, the last always `sequence_length` (192, 4, 8 -> [48, 96, 144, 192])."""
    edges = {min(sequence_length, math.ceil(sequence_length * i / buckets / length_multiple) * length_multiple)
             for i in range(1, buckets + 1)}
    return sorted(edges | {sequence_length})


def training_batches(
    file_patterns: list[str],
    feature_spec: dict,
    columns: tuple,
    batch_size: int,
    edges: list[int],
    config: TrainingDataConfig,
    seed: int,
    same_shape_batches: int = 1,
    shuffle: bool = True,
    example_map: "Optional[Callable[[dict], dict]]" = None,
    workers: int = 1,
) -> "tf.data.Dataset":
    """Endless, shuffled (inputs, target) batches of the `columns` of transformed examples.
    With `shuffle` off, every pass yields the same batches in the same order (the eval loss of
    two measurements is then computed on the same texts).

    Sequence columns (length `edges[-1]`) are cut per batch as `config.batching` says; other
    columns (a class id) pass as they are. `example_map` rewrites each parsed example (a dict of
    the columns) before batching, every time it is read (denoising's fresh noise per epoch); it
    may shorten a sequence, never lengthen it. Every batch has `batch_size` rows, and each run of
    `same_shape_batches` batches has one shape: a step that runs several train steps per call
    (`steps_per_execution`) under MirroredStrategy failed its cross-replica gather of the
    embedding gradient when the batches of one call differed in length. `columns` is (inputs,
    target); inputs may be a tuple of names, batched as a dict (a model of named inputs). Under
    several `workers` the dataset is auto-sharded as `config.shard` says (by data, or by file).
    """
    import tensorflow as tf

    files = _matching_files(file_patterns)
    if workers > 1 and config.shard == "file" and len(files) < workers:
        raise ValueError(f"training_data.shard is file, but {os.path.dirname(files[0])} holds {len(files)} file(s) "
                         f"for {workers} workers: shard by data, or write the split in more files")
    inputs, target = columns
    names = [*(inputs if isinstance(inputs, tuple) else (inputs,)), target]
    spec = {name: feature_spec[name] for name in dict.fromkeys(names)}
    # per-position features (a tagger's characters per word too) are cut; the 1-D ones measure a text
    sequences = [name for name, feature in spec.items() if list(feature.shape)[:1] == [edges[-1]]]
    measured = [name for name in sequences if len(spec[name].shape) == 1]
    parallel = tf.data.AUTOTUNE if config.autotune else PARALLEL_CALLS
    records = tf.data.TFRecordDataset(files, compression_type=_compression(files),
                                      num_parallel_reads=parallel if config.autotune else min(len(files), parallel))
    if _fits_in_memory(files, config):
        records = records.cache()
    if shuffle:
        records = records.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    records = records.repeat()
    examples = records.batch(PARSE_BATCH).map(
        lambda serialized: tf.io.parse_example(serialized, spec), num_parallel_calls=parallel
    ).unbatch()
    if example_map is not None:
        examples = examples.map(example_map, num_parallel_calls=parallel)
    edge_lengths = tf.constant(edges, tf.int32)

    def length(example: dict) -> tf.Tensor:
        """Real tokens in the example's longest sequence column (ids above 0; padding is 0, or a
        tagger's -1, at the right)."""
        return tf.reduce_max([tf.math.count_nonzero(example[name] > 0, axis=-1, dtype=tf.int32) for name in measured], 0)

    def first_edge_holding(tokens: tf.Tensor) -> tf.Tensor:
        """Index of the first edge at least `tokens` long."""
        return tf.searchsorted(edge_lengths, tokens[None], side="left")[0]

    def bucket(example: dict) -> tf.Tensor:
        return tf.cast(first_edge_holding(length(example)), tf.int64)

    def cut(batch: dict) -> dict:
        edge = edge_lengths[first_edge_holding(tf.reduce_max(length(batch)))]
        return {name: value[:, :edge] if name in sequences else value for name, value in batch.items()}

    rows = batch_size * same_shape_batches
    if config.batching == "bucket" and sequences:
        batches = examples.group_by_window(
            key_func=bucket, reduce_func=lambda _, window: window.batch(rows), window_size=rows
        )
    else:
        batches = examples.batch(rows, drop_remainder=True)
    if config.batching != "fixed" and sequences:
        batches = batches.map(cut, num_parallel_calls=parallel)
    if same_shape_batches > 1:
        batches = batches.flat_map(lambda group: tf.data.Dataset.from_tensor_slices(group).batch(batch_size))
    if isinstance(inputs, tuple):  # a model of several named inputs
        batches = batches.map(lambda batch: ({name: batch[name] for name in inputs}, batch[target]))
    else:
        batches = batches.map(lambda batch: (batch[inputs], batch[target]))
    sharding = tf.data.Options()  # read only where the dataset is distributed over workers
    sharding.experimental_distribute.auto_shard_policy = (tf.data.experimental.AutoShardPolicy.FILE
                                                         if config.shard == "file" else tf.data.experimental.AutoShardPolicy.DATA)
    batches = batches.with_options(sharding)
    if config.autotune:
        return batches.prefetch(tf.data.AUTOTUNE)
    from models.runtime.training import without_autotuning

    return without_autotuning(batches.prefetch(PREFETCH_BATCHES))


def batch_profile(dataset: "tf.data.Dataset", sequence_length: int, batches: int = 200) -> dict[str, float]:
    """What the first `batches` batches of `dataset` hold: the share of padding in their inputs,
    as batched and as it would be at the full sequence length (what `fixed` batching computes
    on), and how many distinct batch shapes they come in (each traced, and under XLA compiled,
    once: the buckets the texts fill, not every bucket there is)."""
    import numpy as np
    import tensorflow as tf

    real = computed = rows = 0
    shapes = set()
    for inputs, targets in dataset.take(batches):
        named = isinstance(inputs, dict) and "input_ids" in inputs  # a tagger's words beside their characters
        ids = (inputs["input_ids"] if named else tf.nest.flatten(inputs)[0]).numpy()
        real += int(np.count_nonzero(ids))
        computed += ids.size
        rows += ids.shape[0]
        shapes.add(tuple(tuple(t.shape) for t in tf.nest.flatten((inputs, targets))))
    return {
        "padding_share": round(1.0 - real / max(computed, 1), 4),
        "padding_share_at_full_length": round(1.0 - real / max(rows * sequence_length, 1), 4),
        "batch_shapes": len(shapes),
    }


def count_records(file_patterns: list[str]) -> int:
    """Records in a split's files (one pass, in the graph: about a second per 100,000 records)."""
    import tensorflow as tf

    files = _matching_files(file_patterns)
    records = tf.data.TFRecordDataset(files, compression_type=_compression(files), num_parallel_reads=tf.data.AUTOTUNE)
    return int(records.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1).numpy())


def count_records_and_tokens(file_patterns: list[str], feature_spec: dict, features: tuple[str, ...]) -> tuple[int, int]:
    """The records in a split's files and their real (non-padding) token ids of `features`, one
    pass in the graph."""
    import tensorflow as tf

    files = _matching_files(file_patterns)
    spec = {name: feature_spec[name] for name in features}
    batches = tf.data.TFRecordDataset(files, compression_type=_compression(files), num_parallel_reads=tf.data.AUTOTUNE)
    batches = batches.batch(PARSE_BATCH).map(lambda records: tf.io.parse_example(records, spec))

    def add(totals: tuple[tf.Tensor, tf.Tensor], batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
        records = tf.shape(batch[features[0]], out_type=tf.int64)[0]
        tokens = tf.add_n([tf.math.count_nonzero(batch[name] != PAD_ID) for name in features])
        return totals[0] + records, totals[1] + tokens

    records, tokens = batches.reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), add)
    return int(records.numpy()), int(tokens.numpy())


def _matching_files(file_patterns: list[str]) -> list[str]:
    import tensorflow as tf

    files = sorted(path for pattern in file_patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {', '.join(file_patterns)}")
    return files


def _compression(files: list[str]) -> str:
    """Transform writes gzipped TFRecords (`*.gz`)."""
    return "GZIP" if all(path.endswith(".gz") for path in files) else ""


def _fits_in_memory(files: list[str], config: TrainingDataConfig) -> bool:
    import tensorflow as tf

    if config.cache != "auto":
        return config.cache == "memory"
    size = sum(tf.io.gfile.stat(path).length for path in files)
    return size <= config.cache_limit_mb * 2**20
