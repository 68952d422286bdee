"""Decoding shared by the language-model families: greedy, temperature, top-k, top-p, beam.

Everything is TensorFlow ops inside `tf.while_loop`s, so a SavedModel signature can decode
and TensorFlow Serving can run it. A family supplies a step function

    step(token [batch] int64, state, position) -> (logits [batch, vocab] float32, state)

that consumes one token at `position` and returns the logits of the next one, carrying its own
state (LSTM states, or a Transformer's key/value cache); `state` is any nest of tensors whose
first axis is the batch. Decoding feeds BOS at position 0, then each prompt's tokens (forced,
so prompts of different lengths share one loop), then its own choices.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import tensorflow as tf

from models.layers.seq2seq import source_mask, without_trailing_padding
from models.layers.tokens import BOS_ID, EOS_ID, PAD_ID

StepFn = Callable[[tf.Tensor, Any, tf.Tensor], tuple[tf.Tensor, Any]]
# An encoder-decoder's output is at most this many tokens per source token (the longest source
# of the batch, EOS included) plus the margin: a translation, summary or restored text twice as
# long as its source is a model repeating itself, and the bound keeps such a model's decoding
# at the cost of the source rather than of the longest text the model allows.
OUTPUT_PER_SOURCE_TOKEN = 2
OUTPUT_MARGIN = 8
_NEG = -1e9  # a log-probability that never wins, without the NaNs of -inf arithmetic


def filter_logits(logits: tf.Tensor, top_k: tf.Tensor | int = 0, top_p: tf.Tensor | float = 1.0) -> tf.Tensor:
    """Masks (to -1e9) every token outside the `top_k` most likely (0: no limit) and outside
    the nucleus: the fewest most-likely tokens whose probability reaches `top_p`."""
    vocab = tf.shape(logits)[-1]
    k = tf.cast(top_k, tf.int32)
    k = tf.where(k > 0, tf.minimum(k, vocab), vocab)
    kth_best = tf.gather(tf.sort(logits, direction="DESCENDING"), k - 1, axis=-1)[..., None]
    logits = tf.where(logits < kth_best, _NEG, logits)

    sorted_logits = tf.sort(logits, direction="DESCENDING")
    mass_before = tf.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
    in_nucleus = mass_before < tf.cast(top_p, logits.dtype)  # always keeps the best token
    cutoff = tf.reduce_min(tf.where(in_nucleus, sorted_logits, tf.reduce_max(sorted_logits, -1, keepdims=True)), -1, keepdims=True)
    return tf.where(logits < cutoff, _NEG, logits)


def _never_generate_specials(logits: tf.Tensor) -> tf.Tensor:
    """PAD and BOS are not text: a decoder may not choose them."""
    vocab = tf.shape(logits)[-1]
    special = tf.one_hot(PAD_ID, vocab, on_value=True, off_value=False) | tf.one_hot(BOS_ID, vocab, on_value=True, off_value=False)
    return tf.where(special, _NEG, logits)


def sample(
    step: StepFn,
    state: Any,
    prompt_ids: tf.Tensor,
    prompt_lengths: tf.Tensor,
    max_new_tokens: tf.Tensor | int,
    temperature: tf.Tensor | float = 1.0,
    top_k: tf.Tensor | int = 0,
    top_p: tf.Tensor | float = 1.0,
    seed: tf.Tensor | int = 0,
) -> tf.Tensor:
    """Prompt + continuation token ids [batch, prompt_len + max_new_tokens], PAD after EOS.

    temperature 0 is greedy (arg-max); otherwise tokens are drawn from the filtered, tempered
    distribution with a stateless RNG, so a seed gives the same text every time.
    """
    prompt_ids = tf.cast(prompt_ids, tf.int64)
    prompt_lengths = tf.cast(prompt_lengths, tf.int32)
    batch = tf.shape(prompt_ids)[0]
    total = tf.shape(prompt_ids)[1] + tf.cast(max_new_tokens, tf.int32)
    padded_prompt = tf.pad(prompt_ids, [[0, 0], [0, tf.cast(max_new_tokens, tf.int32)]])
    temperature = tf.cast(temperature, tf.float32)
    seed = tf.cast(seed, tf.int32)

    def choose(logits: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
        logits = _never_generate_specials(logits)
        greedy = tf.argmax(logits, axis=-1)
        tempered = filter_logits(logits / tf.maximum(temperature, 1e-6), top_k, top_p)
        drawn = tf.random.stateless_categorical(tempered, 1, seed=tf.stack([seed, position]))[:, 0]
        return tf.where(temperature > 0, drawn, greedy)

    def body(position, token, state, finished, out):
        logits, state = step(token, state, position)
        forced = position < prompt_lengths
        chosen = tf.where(finished, tf.constant(PAD_ID, tf.int64), choose(logits, position))
        token = tf.where(forced, padded_prompt[:, position], chosen)
        generated = position + 1 - prompt_lengths  # tokens produced after the prompt so far
        finished = finished | (~forced & ((token == EOS_ID) | (generated >= max_new_tokens)))
        out = out.write(position, token)
        return position + 1, token, state, finished, out

    _, _, _, _, out = tf.while_loop(
        lambda position, *_: position < total,
        body,
        (tf.constant(0), tf.fill([batch], tf.constant(BOS_ID, tf.int64)), state,
         tf.zeros([batch], tf.bool), tf.TensorArray(tf.int64, size=total)),
        maximum_iterations=total,
    )
    return tf.transpose(out.stack())


def _growing_shape(t: tf.Tensor) -> tf.TensorShape:
    """A state tensor's shape across decoding steps: any batch, and any length on an axis that
    starts empty (a cache that grows as the output does)."""
    return tf.TensorShape([None, *(None if size == 0 else size for size in t.shape[1:])])


def _reorder(nest: Any, flat_indices: tf.Tensor) -> Any:
    return tf.nest.map_structure(lambda t: tf.gather(t, flat_indices, axis=0), nest)


def beam_search_beams(
    step: StepFn,
    state: Any,
    prompt_ids: tf.Tensor,
    prompt_lengths: tf.Tensor,
    max_new_tokens: tf.Tensor | int,
    beam_width: tf.Tensor | int,
    length_penalty: float = 0.6,
    best_only: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Every beam per example, best first: (token ids [batch, beam_width, prompt_len +
    max_new_tokens], scores [batch, beam_width]), a score being the continuation's
    length-normalised log-probability given the prompt. With `best_only`, only the best beam
    is asked for: an example stops growing once its best beam has ended and no beam still
    growing can overtake it (`_settled`), so the other beams may be left unfinished.

    `state` is for batch * beam_width rows (row b * beam_width + w is beam w of example b); an
    axis of length 0 in it may grow from step to step (a cache of the keys and values so far).
    A beam ends at EOS or after `max_new_tokens`; the winner has the best summed log-probability
    divided by the GNMT length penalty ((5 + length) / 6) ** length_penalty, where length counts
    the generated tokens (0 turns the normalisation off). `beam_width` may be a tensor (a
    serving signature's input). The loop ends once every beam has ended (with `best_only`, once
    every example's best beam is settled); the ids are padded to the full length.
    """
    prompt_ids = tf.cast(prompt_ids, tf.int64)
    prompt_lengths = tf.cast(prompt_lengths, tf.int32)
    batch = tf.shape(prompt_ids)[0]
    width = tf.cast(beam_width, tf.int32) if isinstance(beam_width, tf.Tensor) else beam_width
    total = tf.shape(prompt_ids)[1] + tf.cast(max_new_tokens, tf.int32)
    padded_prompt = tf.pad(prompt_ids, [[0, 0], [0, tf.cast(max_new_tokens, tf.int32)]])
    # Only beam 0 is alive at first, so the beams do not start as copies of each other.
    scores = tf.tile(tf.concat([[0.0], tf.fill([width - 1], _NEG)], 0)[None], [batch, 1])
    rows = tf.range(batch)[:, None] * width  # flat row of each example's beam 0

    def body(position, token, state, scores, finished, lengths, out):
        logits, state = step(tf.reshape(token, [-1]), state, position)
        vocab = tf.shape(logits)[-1]
        log_probs = tf.nn.log_softmax(_never_generate_specials(logits))
        log_probs = tf.reshape(log_probs, [batch, width, vocab])
        # A finished beam continues with PAD at no cost, keeping its score.
        pad_only = tf.one_hot(PAD_ID, vocab, on_value=0.0, off_value=_NEG)
        log_probs = tf.where(finished[..., None], pad_only, log_probs)

        forced = (position < prompt_lengths)[:, None]  # [batch, 1]
        prompt_token = tf.tile(padded_prompt[:, position][:, None], [1, width])

        top_scores, top_index = tf.math.top_k(tf.reshape(scores[..., None] + log_probs, [batch, -1]), k=width)
        beam = tf.where(forced, tf.range(width)[None], top_index // vocab)
        token = tf.where(forced, prompt_token, tf.cast(top_index % vocab, tf.int64))
        scores = tf.where(forced, scores, top_scores)  # a score covers the continuation only

        state = _reorder(state, tf.reshape(rows + beam, [-1]))
        out = tf.gather(out, beam, batch_dims=1)
        finished = tf.gather(finished, beam, batch_dims=1)
        lengths = tf.gather(lengths, beam, batch_dims=1)
        growing = ~forced & ~finished
        lengths += tf.cast(growing, tf.int32)
        finished |= growing & ((token == EOS_ID) | (lengths >= max_new_tokens))
        out = tf.concat([out, token[..., None]], axis=-1)
        return position + 1, token, state, scores, finished, lengths, out

    beams = tf.TensorShape([None, width if isinstance(width, int) else None])
    shape_invariants = (
        tf.TensorShape([]), beams, tf.nest.map_structure(_growing_shape, state),
        beams, beams, beams, beams.concatenate([None]),
    )

    def going(position, token, state, scores, finished, lengths, out):
        done = tf.reduce_all(finished, axis=1)
        if best_only:
            done |= _settled(scores, finished, lengths, max_new_tokens, length_penalty)
        return (position < total) & ~tf.reduce_all(done)

    _, _, _, scores, _, lengths, out = tf.while_loop(
        going,
        body,
        (tf.constant(0), tf.fill([batch, width], tf.constant(BOS_ID, tf.int64)), state, scores,
         tf.zeros([batch, width], tf.bool), tf.zeros([batch, width], tf.int32), tf.zeros([batch, width, 0], tf.int64)),
        shape_invariants=shape_invariants,
        maximum_iterations=total,
    )
    out = tf.pad(out, [[0, 0], [0, 0], [0, total - tf.shape(out)[2]]])
    normalized, order = tf.math.top_k(scores / _penalty(lengths, length_penalty), k=width)  # best first
    return tf.gather(out, order, batch_dims=1), normalized


def _penalty(lengths: tf.Tensor | int, length_penalty: float) -> tf.Tensor:
    """GNMT's length penalty ((5 + length) / 6) ** length_penalty; a score is divided by it."""
    return ((5.0 + tf.cast(lengths, tf.float32)) / 6.0) ** length_penalty


def _settled(scores: tf.Tensor, finished: tf.Tensor, lengths: tf.Tensor, max_new_tokens: tf.Tensor | int,
             length_penalty: float) -> tf.Tensor:
    """[batch] whether an example's best ended beam can no longer be overtaken: a growing beam's
    summed log-probability only falls, and the largest penalty (at `max_new_tokens`) is the most
    it can be divided by, so its normalised score stays below score / that penalty."""
    ended_best = tf.reduce_max(tf.where(finished, scores / _penalty(lengths, length_penalty), -math.inf), axis=1)
    most_divided = scores / _penalty(max_new_tokens, length_penalty)
    growing_bound = tf.reduce_max(tf.where(finished, -math.inf, most_divided), axis=1)
    return ended_best > growing_bound


def beam_search(*args: Any, **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """The best beam per example of `beam_search_beams` (same arguments): (token ids [batch,
    prompt_len + max_new_tokens], score), the score being the continuation's length-normalised
    log-probability given the prompt."""
    beams, scores = beam_search_beams(*args, best_only=True, **kwargs)
    return beams[:, 0], scores[:, 0]


def repeat_for_beams(nest: Any, beam_width: tf.Tensor | int) -> Any:
    """Each row repeated `beam_width` times in place (row b -> rows b * width ... + width - 1),
    the layout `beam_search` expects for per-example tensors such as an encoder's output."""
    return tf.nest.map_structure(lambda t: tf.repeat(t, beam_width, axis=0), nest)


def output_limit(trimmed_source_ids: tf.Tensor, max_length: tf.Tensor | int) -> tf.Tensor:
    """The most tokens an output of this batch may have: `max_length`, or fewer where every
    source is short, `OUTPUT_PER_SOURCE_TOKEN` times the longest source plus `OUTPUT_MARGIN`
    (the ids already cut by `without_trailing_padding`, so their width is the longest source)."""
    longest = tf.shape(trimmed_source_ids)[1]
    return tf.minimum(tf.cast(max_length, tf.int32), OUTPUT_PER_SOURCE_TOKEN * longest + OUTPUT_MARGIN)


def decode_seq2seq_beams(
    model: Any,
    source_ids: tf.Tensor,
    max_length: tf.Tensor | int,
    beam_width: tf.Tensor | int = 1,
    length_penalty: float = 0.6,
    best_only: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Beam search (beam width 1: greedy) over an encoder-decoder: the source is encoded once,
    then the decoder runs step by step from BOS until every beam has ended, for at most
    `output_limit` tokens. Returns every beam's target ids [batch, beam_width, that limit]
    (EOS, then PAD), best first, and their length-normalised log-probabilities [batch,
    beam_width].

    `model` has `encode(source_ids) -> encoded` and `decoder(encoded, beam_width) -> (step,
    state)` (`models.families.rnn_seq2seq`, `models.families.transformer_seq2seq`)."""
    source_ids = without_trailing_padding(source_ids)  # never attended to: the encoder and each step skip it
    limit = output_limit(source_ids, max_length)
    batch = tf.shape(source_ids)[0]
    step, state = model.decoder(model.encode(source_ids), beam_width)
    no_prompt = tf.zeros([batch, 0], tf.int64)
    return beam_search_beams(step, state, no_prompt, tf.zeros([batch], tf.int32), limit, beam_width, length_penalty,
                             best_only)


def decode_seq2seq(*args: Any, **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """The best beam of `decode_seq2seq_beams` (same arguments): target ids [batch, up to
    max_length] and the length-normalised log-probability [batch]."""
    beams, scores = decode_seq2seq_beams(*args, best_only=True, **kwargs)
    return beams[:, 0], scores[:, 0]


def decode_seq2seq_in_chunks(
    model: Any,
    source_ids: tf.Tensor,
    max_length: tf.Tensor | int,
    beam_width: tf.Tensor | int,
    chunk_size: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """`decode_seq2seq` over many sources: sorted by length and decoded `chunk_size` at a time,
    so each chunk's sources are of similar length and its loop stops when its own beams have
    ended. Returns, in the input order, target ids [batch, output_limit of the whole batch]
    and scores [batch]. At least one source."""
    source_ids = without_trailing_padding(source_ids)
    count = tf.shape(source_ids)[0]
    limit = output_limit(source_ids, max_length)
    order = tf.argsort(tf.reduce_sum(tf.cast(source_mask(source_ids), tf.int32), axis=1), stable=True)
    ordered = tf.gather(source_ids, order)
    chunks = (count + chunk_size - 1) // chunk_size

    def body(i: tf.Tensor, ids: tf.TensorArray, scores: tf.TensorArray) -> tuple:
        chunk_ids, chunk_scores = decode_seq2seq(model, ordered[i * chunk_size:(i + 1) * chunk_size], limit, beam_width)
        chunk_ids = tf.pad(chunk_ids, [[0, 0], [0, limit - tf.shape(chunk_ids)[1]]])
        return i + 1, ids.write(i, chunk_ids), scores.write(i, chunk_scores)

    _, ids, scores = tf.while_loop(
        lambda i, *_: i < chunks, body,
        (tf.constant(0), tf.TensorArray(tf.int64, size=chunks, infer_shape=False, element_shape=[None, None]),
         tf.TensorArray(tf.float32, size=chunks, infer_shape=False, element_shape=[None])),
    )
    back = tf.argsort(order)  # the inverse permutation
    return tf.gather(ids.concat(), back), tf.gather(scores.concat(), back)

