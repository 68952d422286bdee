"""A pushed language model rebuilt with its weights, and a classifier fine-tuned from it: the
loaded layers hold the pushed weights before the first step, the head is new, and a model of
other settings is refused naming the SavedModel."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models import registry
from models.layers.pooling import last_position_layer
from models.serving.export import save_model
from models.transfer import (Head, classifier_from_language_model, fine_tuned, load_pretrained, loaded_and_new,
                             tagger_from_language_model)

VOCAB = 40


def pushed_language_model(family, directory, **settings):
    """A small language model with weights no initialiser gives, exported as the project exports."""
    config = registry.get(family).config_class(size="small", layers=1, **settings)
    model = registry.build_model(family, "language_model", config, VOCAB)
    rng = np.random.default_rng(1)
    for weight in model.weights:
        weight.assign(rng.normal(scale=0.1, size=weight.shape).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="input_ids")])
    def logits(input_ids):
        return {"logits": model(input_ids)}

    save_model(model, str(directory), {"serving_default": logits.get_concrete_function()})
    return config, model


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_a_classifier_from_a_pushed_language_model_starts_from_its_weights(family, tmp_path):
    config, pushed = pushed_language_model(family, tmp_path)
    loaded = load_pretrained(family, "language_model", dataclasses.asdict(config), VOCAB, str(tmp_path))
    classifier = classifier_from_language_model(loaded, num_classes=3, head=Head(dropout=0.1))
    kept, new = loaded_and_new(classifier, loaded)
    assert new == ["class_logits"] and "embedding" in kept and "logits" not in kept
    for rebuilt, original in zip(loaded.weights, pushed.weights):  # one builder: the same order
        np.testing.assert_array_equal(rebuilt.numpy(), original.numpy(), err_msg=original.name)
    loaded_ids = {id(w) for w in loaded.weights}
    kept_weights = [w for layer in classifier.layers if layer.name in kept for w in layer.weights]
    assert kept_weights and all(id(w) in loaded_ids for w in kept_weights)  # shared, not copied
    assert len(kept_weights) == len(loaded.weights) - len(loaded.get_layer("logits").weights)
    head = classifier.get_layer("class_logits")
    assert not head.bias.numpy().any()  # a fresh layer: zero bias, Glorot kernel
    assert np.abs(head.kernel.numpy()).max() <= np.sqrt(6 / sum(head.kernel.shape))
    ids = np.array([[1, 5, 6, 7, 0, 0], [1, 9, 0, 0, 0, 0]])
    assert classifier(ids).shape == (2, 3)
    # padding after a text never changes its class scores
    np.testing.assert_allclose(classifier(ids[:, :4]).numpy(), classifier(ids).numpy(), atol=1e-5)


def test_the_last_position_is_where_a_causal_model_has_read_the_whole_text(tmp_path):
    config, _ = pushed_language_model("transformer", tmp_path)
    loaded = load_pretrained("transformer", "language_model", dataclasses.asdict(config), VOCAB, str(tmp_path))
    states = tf_keras.Model(loaded.inputs[0], loaded.get_layer("logits").input)
    ids = np.array([[1, 5, 6, 7, 0, 0], [1, 9, 0, 0, 0, 0]])
    expected = states(ids).numpy()[[0, 1], [3, 1]]
    last = last_position_layer()([states(ids), tf.constant(ids)]).numpy()
    np.testing.assert_allclose(last, expected, atol=1e-6)
    both = classifier_from_language_model(loaded, num_classes=2, head=Head(pooling="both"))
    assert both.get_layer("pooled").output.shape[-1] == 2 * expected.shape[-1]
    np.testing.assert_allclose(both(ids[:, :4]).numpy(), both(ids).numpy(), atol=1e-5)  # padding changes nothing


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_a_tagger_reads_each_words_language_model_state_beside_new_characters(family, tmp_path):
    config, _ = pushed_language_model(family, tmp_path)
    loaded = load_pretrained(family, "language_model", dataclasses.asdict(config), VOCAB, str(tmp_path))
    tagger = tagger_from_language_model(loaded, num_classes=5)
    kept, new = loaded_and_new(tagger, loaded)
    assert kept == ["word_states"] and new == ["characters", "tag_logits"]
    words = np.array([[5, 6, 7, 0], [9, 0, 0, 0]])
    chars = np.zeros([2, 4, 6], np.int64)
    chars[:, :, :2] = [[7, 8]]
    chars[words == 0] = 0
    scores = tagger({"input_ids": words, "char_ids": chars}).numpy()
    assert scores.shape == (2, 4, 5)
    states = tf_keras.Model(loaded.inputs[0], loaded.get_layer("logits").input)
    from_bos = states(np.array([[1, 5, 6, 7], [1, 9, 0, 0]])).numpy()  # BOS, then the words
    word_states = tagger.get_layer("word_states")(tf.constant(words)).numpy()
    np.testing.assert_allclose(word_states[0, :3], from_bos[0, 1:4], atol=1e-5)
    np.testing.assert_allclose(word_states[1, :1], from_bos[1, 1:2], atol=1e-5)
    # padding after a sentence never changes its words' scores
    short = tagger({"input_ids": words[:, :3], "char_ids": chars[:, :3]}).numpy()
    np.testing.assert_allclose(short[0], scores[0, :3], atol=1e-5)


def test_the_language_modelling_term_adds_the_pushed_models_loss_in_training_only(tmp_path):
    config, pushed = pushed_language_model("transformer", tmp_path, dropout=0.0)  # training equals inference
    loaded = load_pretrained("transformer", "language_model", dataclasses.asdict(config), VOCAB, str(tmp_path))
    classifier = classifier_from_language_model(loaded, num_classes=2, head=Head(lm_weight=0.5))
    kept, new = loaded_and_new(classifier, loaded)
    assert new == ["class_logits"] and "language_modelling_term" in kept  # it holds the pushed logits layer
    ids = np.array([[1, 5, 6, 7, 0, 0], [1, 9, 8, 0, 0, 0]])
    classifier(ids, training=False)
    assert classifier.losses == []
    classifier(ids, training=True)
    (term,) = classifier.losses
    logits = pushed(ids).numpy()[:, :-1]
    targets = ids[:, 1:]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    expected = 0.5 * -(picked * (targets > 0)).sum() / (targets > 0).sum()
    np.testing.assert_allclose(term.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_an_encoder_decoder_carries_on_whole_with_its_weights(family, tmp_path):
    """BART's recipe: a pushed denoiser becomes the translator, every layer loaded, none new."""
    config = registry.get(family).config_class(size="small", layers=1)
    pushed = registry.build_model(family, "seq2seq", config, VOCAB)
    rng = np.random.default_rng(2)
    for weight in pushed.weights:
        weight.assign(rng.normal(scale=0.1, size=weight.shape).astype(np.float32))
    pushed.save(str(tmp_path), save_format="tf", save_traces=False)
    model, loaded = fine_tuned("seq2seq", family, "seq2seq", dataclasses.asdict(config), VOCAB, str(tmp_path),
                               num_classes=0, head=Head(dropout=0.1))
    kept, new = loaded_and_new(model, loaded)
    assert model is loaded and new == [] and kept == [layer.name for layer in model.layers if layer.weights]
    assert len(model.weights) == len(pushed.weights)
    for rebuilt, original in zip(model.weights, pushed.weights):
        np.testing.assert_array_equal(rebuilt.numpy(), original.numpy(), err_msg=original.name)


def test_a_pushed_model_of_other_settings_is_refused_naming_it(tmp_path):
    config, _ = pushed_language_model("transformer", tmp_path)
    wider = dataclasses.asdict(dataclasses.replace(config, width=config.sized().width * 2))
    with pytest.raises(ValueError, match=f"{tmp_path}: its weights do not fit a transformer language_model"):
        load_pretrained("transformer", "language_model", wider, VOCAB, str(tmp_path))


def test_a_model_description_is_read_back_and_a_missing_or_broken_one_is_named(tmp_path):
    from components.training.model_description import (DESCRIPTION_FILE, SENTENCEPIECE, read_description,
                                                        vocabulary_path, write_description)

    with pytest.raises(ValueError, match=f"{tmp_path / DESCRIPTION_FILE} is missing"):
        read_description(str(tmp_path))
    description = {"family": "rnn", "task": "language_model", "kind": "language_model", "hparams": {"size": "small"},
                   "vocab_size": 40, "vocabulary": "tokens", "tokenizer": "word", "lowercase": False}
    write_description(str(tmp_path), description)
    assert read_description(str(tmp_path)) == description
    # a subword model's SentencePiece model is written beside its description, where an Importer finds it
    subword = {**description, "vocabulary": SENTENCEPIECE, "tokenizer": "subword"}
    with pytest.raises(ValueError, match="goes with its SentencePiece model"):
        write_description(str(tmp_path / "subword"), subword)
    write_description(str(tmp_path / "subword"), subword, b"pieces")
    assert open(vocabulary_path(str(tmp_path / "subword"), subword), "rb").read() == b"pieces"
    assert vocabulary_path(str(tmp_path), description) == str(tmp_path / "assets" / "tokens")
    (tmp_path / DESCRIPTION_FILE).write_text('{"family": "rnn"}')
    with pytest.raises(ValueError, match="lacks task, kind, hparams"):
        read_description(str(tmp_path))
    (tmp_path / DESCRIPTION_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="is not a readable model description"):
        read_description(str(tmp_path))
