"""A pre-trained model's layers under a new head: fine-tuning as GPT does it.

A pushed model is rebuilt from what it was (family, kind, hyper-parameters, vocabulary size)
and its weights are read from the SavedModel's variables, which hold the Keras model as the
checkpoint's root (the exported signatures and the Transform layer are left aside). A language
model's hidden states are the input of its `logits` layer, in every family; a classifier
fine-tuned from it reads them, pooled over the text, into a new class layer; a tagger reads each
word's state beside a new view of its characters.
An encoder-decoder (a denoiser, a translator) carries on whole as another pair task's model.
The fine-tuned model keeps the pre-trained model's architecture and size, so only the head is new.

What can start from what (pre-trained kind -> fine-tuned kind) is `TRANSFERS`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Callable

from models import registry

if TYPE_CHECKING:
    import tf_keras

LM_OUTPUT_LAYER = "logits"  # a language model's last layer: its input is the hidden states


def load_pretrained(family: str, kind: str, hparams: dict[str, Any], vocab_size: int, saved_model_dir: str) -> tf_keras.Model:
    """The model a SavedModel of this project was exported from, rebuilt with its weights.
    Raises ValueError naming the directory when its variables do not fit the rebuilt model."""
    import tensorflow as tf

    config = registry.get(family).config_class(**hparams)
    model = registry.build_model(family, kind, config, vocab_size)
    try:
        status = model.load_weights(os.path.join(saved_model_dir, "variables", "variables"))
        status.expect_partial()  # the SavedModel also holds its signatures and the Transform layer
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise ValueError(f"{saved_model_dir}: its weights do not fit a {family} {kind} of these settings "
                         f"({str(err).strip().splitlines()[0]})") from None
    return model


def language_modelling_term(logits_layer: Any, weight: float) -> Any:
    """A layer that passes hidden states [batch, time, width] through and, in training, adds
    `weight` times the language model's next-token cross-entropy over the text's real tokens to
    the model's loss (GPT's auxiliary objective while fine-tuning: the loaded layers keep
    modelling the language as they learn the task). At inference it computes nothing."""
    import tensorflow as tf
    import tf_keras

    class LanguageModellingTerm(tf_keras.layers.Layer):
        def __init__(self, **kwargs: Any):
            super().__init__(name="language_modelling_term", **kwargs)
            self.logits_layer = logits_layer  # the pushed model's own, so its weights are the loaded ones

        def call(self, inputs: list, training: Any = None) -> Any:
            hidden, token_ids = inputs
            if training:
                targets = token_ids[:, 1:]  # the ids begin with BOS: position t predicts id t + 1
                logits = self.logits_layer(hidden[:, :-1])
                per_token = tf_keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
                real = tf.cast(targets > 0, per_token.dtype)
                self.add_loss(weight * tf.reduce_sum(per_token * real) / tf.maximum(tf.reduce_sum(real), 1.0))
            return hidden

    return LanguageModellingTerm()


POOLINGS = ("max", "last", "both")  # how a classifier reads a language model's hidden states


@dataclasses.dataclass(frozen=True)
class Head:
    """The new head's settings (`training:` in the config)."""

    dropout: float = 0.0  # on the pooled features (a tagger's: on each word's)
    lm_weight: float = 0.0  # the language model's own loss, kept as an auxiliary term at this weight
    pooling: str = "max"  # one of POOLINGS
    characters: str = "cnn"  # a tagger's new view of each word's characters (models.layers.characters)


def classifier_from_language_model(language_model: tf_keras.Model, num_classes: int, head: Head = Head()) -> tf_keras.Model:
    """The language model's embedding and layers up to its hidden states (shared, so they keep
    their weights), pooled (`max` over the real tokens, the `last` real token's, where a causal
    model has read the whole text, or `both` side by side), then dropout and a new layer of class
    logits; with `lm_weight`, the language model's loss stays in training as an auxiliary term."""
    import tf_keras

    from models.layers.pooling import last_position_layer, masked_max_pool_layer

    token_ids = language_model.inputs[0]
    hidden = language_model.get_layer(LM_OUTPUT_LAYER).input
    if head.lm_weight:
        hidden = language_modelling_term(language_model.get_layer(LM_OUTPUT_LAYER), head.lm_weight)([hidden, token_ids])
    pools = {"max": [masked_max_pool_layer()], "last": [last_position_layer()],
             "both": [masked_max_pool_layer(), last_position_layer()]}[head.pooling]
    pooled = [pool([hidden, token_ids]) for pool in pools]
    pooled = pooled[0] if len(pooled) == 1 else tf_keras.layers.Concatenate(name="pooled")(pooled)
    if head.dropout:
        pooled = tf_keras.layers.Dropout(head.dropout, name="head_dropout")(pooled)
    logits = tf_keras.layers.Dense(num_classes, dtype="float32", name="class_logits")(pooled)
    return tf_keras.Model(token_ids, logits, name=f"{language_model.name}_classifier")


def tagger_from_language_model(language_model: tf_keras.Model, num_classes: int, head: Head = Head()) -> tf_keras.Model:
    """Each word's state in the language model (the sentence read from BOS, as the model was
    trained: a state has read the words up to its own), beside a new view of the word's
    characters (the words the vocabulary lacks are read there), then dropout and a new layer of
    tag scores. Inputs as the registry's taggers': word ids and character ids."""
    import tensorflow as tf
    import tf_keras

    from models.layers.characters import character_encoder
    from models.layers.tokens import BOS_ID

    states = tf_keras.Model(language_model.inputs[0], language_model.get_layer(LM_OUTPUT_LAYER).input,
                            name="language_model")

    class WordStates(tf_keras.layers.Layer):
        """[batch, words] ids -> [batch, words, width]: the language model's state after each word."""

        def __init__(self, **kwargs: Any):
            super().__init__(name="word_states", **kwargs)
            self.states = states

        def call(self, ids: tf.Tensor) -> tf.Tensor:
            bos = tf.fill([tf.shape(ids)[0], 1], tf.constant(BOS_ID, ids.dtype))
            return self.states(tf.concat([bos, ids], axis=1))[:, 1:]

    word_ids = tf_keras.Input(shape=(None,), dtype="int64", name="input_ids")
    char_ids = tf_keras.Input(shape=(None, None), dtype="int64", name="char_ids")
    words = tf_keras.layers.Concatenate(name="states_and_characters")(
        [WordStates()(word_ids), character_encoder(head.characters)(char_ids)])
    if head.dropout:
        words = tf_keras.layers.Dropout(head.dropout, name="head_dropout")(words)
    logits = tf_keras.layers.Dense(num_classes, dtype="float32", name="tag_logits")(words)
    return tf_keras.Model({"input_ids": word_ids, "char_ids": char_ids}, logits, name=f"{language_model.name}_tagger")


def the_whole_model(pretrained: tf_keras.Model, num_classes: int, head: Head) -> tf_keras.Model:
    """An encoder-decoder carried on whole to another pair task (BART's recipe: a denoiser's
    encoder and decoder become a translator's); the model is the pre-trained one."""
    return pretrained


def loaded_and_new(model: tf_keras.Model, pretrained: tf_keras.Model) -> tuple[list[str], list[str]]:
    """The names of the fine-tuned model's layers whose weights all come from `pretrained`, and
    of those with new weights (the head)."""
    loaded = {id(weight) for weight in pretrained.weights}
    weighted = [layer for layer in model.layers if layer.weights]
    return ([layer.name for layer in weighted if all(id(w) in loaded for w in layer.weights)],
            [layer.name for layer in weighted if not all(id(w) in loaded for w in layer.weights)])


# (pre-trained kind, fine-tuned kind) -> (the loaded model, classes, the head's settings) -> the fine-tuned model
TRANSFERS: dict[tuple[str, str], Callable[["tf_keras.Model", int, Head], "tf_keras.Model"]] = {
    ("language_model", "classifier"): classifier_from_language_model,
    ("language_model", "tagger"): tagger_from_language_model,
    ("seq2seq", "seq2seq"): the_whole_model,
}


# positions a fine-tuned model's input takes beyond the run's sequence length (a tagger's BOS)
EXTRA_POSITIONS = {tagger_from_language_model: 1}
KEEPS_LM_LOSS = (classifier_from_language_model,)  # the transfers `Head.lm_weight` applies to


def can_transfer(from_kind: str, to_kind: str) -> bool:
    return (from_kind, to_kind) in TRANSFERS


def keeps_lm_loss(from_kind: str, to_kind: str) -> bool:
    return TRANSFERS.get((from_kind, to_kind)) in KEEPS_LM_LOSS


def positions_needed(from_kind: str, to_kind: str, sequence_length: int) -> int:
    """The positions the pre-trained model reads in the fine-tuned model, for a run of this
    sequence length: a model with a fixed number of positions (a Transformer's `context`) must have them."""
    return sequence_length + EXTRA_POSITIONS.get(TRANSFERS.get((from_kind, to_kind)), 0)


def fine_tuned(kind: str, family: str, pretrained_kind: str, hparams: dict[str, Any], vocab_size: int,
               saved_model_dir: str, num_classes: int, head: Head = Head()) -> tuple[tf_keras.Model, tf_keras.Model]:
    """(the model of `kind` that starts from the pushed model in `saved_model_dir`, the loaded
    pre-trained model whose layers it shares)."""
    if not can_transfer(pretrained_kind, kind):
        raise ValueError(f"a {kind} cannot start from a {pretrained_kind}")
    pretrained = load_pretrained(family, pretrained_kind, hparams, vocab_size, saved_model_dir)
    return TRANSFERS[(pretrained_kind, kind)](pretrained, num_classes, head), pretrained
