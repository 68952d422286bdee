"""GPU paths exercised on CPU: precision policies and XLA for every family, down to the exported
SavedModel (MirroredStrategy over two logical CPUs: test_mirrored_strategy.py). The helpers here
(tiny models, a character Transform, export as the Trainer does) serve both files."""

import dataclasses
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # also when run as a script, without conftest

import pathlib  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.training.transform_module import language_model_ids, tokenize  # noqa: E402
from models import registry  # noqa: E402
from models.runtime.acceleration import distribution_strategy, float32_copy, precision_policy  # noqa: E402
from models.serving.export import TextCodec, export_language_model  # noqa: E402
from models.layers.tokens import NUM_RESERVED, model_vocab_size  # noqa: E402
from models.runtime.training import compile_language_model  # noqa: E402
from models.serving.vae_export import export_vae  # noqa: E402

FAMILIES = ["rnn", "transformer", "hvae"]
ALPHABET = "abcdefgh "
VOCAB = model_vocab_size(len(ALPHABET))
LENGTH = 16  # tokens per text, a multiple of the VAE's segment length
SMALL = {
    "rnn": dict(embedding_dim=8, units=16),
    "transformer": dict(layers=2, heads=2, width=16, ff_width=32, context=LENGTH, dropout=0.0),
    "hvae": dict(segment_length=4, embedding_dim=8, encoder_units=8, latent_dim=4, conductor_units=8, decoder_units=16),
}
TEXTS = ["abc abc ha", "hedge bag", "a cab fed", "bead face", "dead beef", "gab had a", "fade bed", "cafe babe"]


def hparams(family: str, **settings):
    return registry.get(family).config_class(**SMALL[family], **settings)


def batches(family: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of the texts as the Transform writes them (a VAE reads its targets)."""
    ids = language_model_ids(tf.ragged.constant([[ALPHABET.index(c) + NUM_RESERVED for c in t] for t in TEXTS], tf.int64), LENGTH)
    inputs = ids["target_ids"] if registry.get(family).objective == "vae" else ids["input_ids"]
    return inputs.numpy(), ids["target_ids"].numpy()


class CharTransform(tf_keras.layers.Layer):
    """Stands in for the TFT layer: raw text -> the Transform's input_ids and target_ids, through
    the same tokenizer and id layout, with ALPHABET as the vocabulary."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        keys = tf.constant(list(ALPHABET))
        ids = tf.range(NUM_RESERVED, NUM_RESERVED + len(ALPHABET), dtype=tf.int64)
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), VOCAB - 1)

    def call(self, features):
        tokens = tokenize(tf.reshape(features["text"], [-1]), "char", lowercase=False)
        return language_model_ids(tf.ragged.map_flat_values(self.table.lookup, tokens), LENGTH)


def export(family: str, model, config, directory: pathlib.Path) -> str:
    """The trained model exported as the Trainer does (a float32 copy, the family's signatures)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = directory / "vocab.txt"
    vocabulary.write_text("\n".join(ALPHABET) + "\n", encoding="utf-8")
    fam = registry.get(family)
    served = float32_copy(lambda: fam.build(config, VOCAB), model)
    codec = TextCodec("text", str(vocabulary), "", fam.decoder, getattr(config, "context", None), LENGTH)
    spec = {"text": tf.io.FixedLenFeature([], tf.string)}
    path = str(directory / "model")
    (export_vae if fam.objective == "vae" else export_language_model)(served, path, CharTransform(), spec, codec)
    return path


def serialized(texts: list[str]) -> tf.Tensor:
    return tf.constant([
        tf.train.Example(features=tf.train.Features(feature={
            "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()]))
        })).SerializeToString()
        for t in texts
    ])


def train(family: str, config, steps: int, jit_compile: bool = False):
    """A compiled model of the family fitted `steps` times on the one batch; (model, losses)."""
    fam = registry.get(family)
    with precision_policy(config.precision):
        model = fam.build(config, VOCAB)
        compile_language_model(model, fam.optimizer(config, steps), jit_compile=jit_compile)
    inputs, targets = batches(family)
    history = model.fit(inputs, targets, batch_size=len(TEXTS), epochs=steps, shuffle=False, verbose=0)
    return model, history.history["loss"]


def test_unknown_switches_are_refused_with_the_key():
    from pipeline.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="'rnn'.*precision must be one of float32, mixed_float16, mixed_bfloat16"):
        config_from_dict({"rnn": {"precision": "float16"}})
    with pytest.raises(ConfigError, match="'hvae'.*strategy must be one of"):
        config_from_dict({"hvae": {"strategy": "tpu"}})
    assert config_from_dict({"transformer": {"jit_compile": True}}).family_config("transformer").jit_compile


def test_jit_compile_of_keras_recurrences_is_refused_on_a_machine_without_gpus(monkeypatch):
    """XLA on CPU segfaults compiling Keras' LSTM loop (bench.charlm, 256 units): refused up front."""
    import pipeline.config_checks
    from bench import charlm
    from pipeline.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="'hvae.jit_compile' is true, but this machine has no GPU and XLA on CPU crashes"):
        config_from_dict({"hvae": {"jit_compile": True, "recurrence": "keras"}})
    # with recurrence auto every hvae LSTM, the masked encoders too, runs models.layers.fast_lstm
    assert config_from_dict({"hvae": {"jit_compile": True}}).family_config("hvae").jit_compile
    with pytest.raises(ConfigError, match="'rnn.jit_compile' is true.*rnn.recurrence: auto"):
        config_from_dict({"rnn": {"jit_compile": True, "recurrence": "keras"}})
    with pytest.raises(ConfigError, match="'rnn.jit_compile' is true"):
        config_from_dict({"rnn": {"jit_compile": True, "cell": "gru"}})
    with pytest.raises(ConfigError, match="'rnn.jit_compile' is true"):  # the classifier's bidirectional Keras LSTM
        config_from_dict({"rnn": {"jit_compile": True}, "data": {"label_column": "label"}})
    # the LSTM language model runs models.layers.fast_lstm on CPU, which XLA compiles
    assert config_from_dict({"rnn": {"jit_compile": True}, "models": ["rnn"]}).family_config("rnn").jit_compile
    with pytest.raises(SystemExit, match="XLA on CPU crashes"):
        charlm.run("rnn", "never-read.txt", "cpu-small", 1, 0, xla=True, settings=["recurrence=keras"])
    monkeypatch.setattr(pipeline.config_checks, "gpu_visible", lambda: True)  # a GPU trains it: cuDNN, not the loop
    assert config_from_dict({"hvae": {"jit_compile": True, "recurrence": "keras"}}).family_config("hvae").jit_compile


def test_auto_strategy_is_the_default_one_on_a_machine_without_gpus():
    assert not tf.config.list_logical_devices("GPU")
    assert distribution_strategy("auto") is tf.distribute.get_strategy()
    assert distribution_strategy("auto").num_replicas_in_sync == 1


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_precision_trains_with_finite_losses_and_serves_float32(family, precision, tmp_path):
    tf_keras.utils.set_random_seed(0)
    model, losses = train(family, hparams(family, precision=precision), steps=3)
    assert np.all(np.isfinite(losses)), losses
    assert model.get_layer("embedding").compute_dtype == precision.split("_")[1]  # the layers did compute in 16 bits
    if precision == "mixed_float16":
        assert isinstance(model.optimizer, tf_keras.mixed_precision.LossScaleOptimizer)

    served = tf.saved_model.load(export(family, model, hparams(family), tmp_path))
    outputs = served.signatures["serving_default"](examples=serialized(TEXTS[:3]))
    for name, value in outputs.items():
        if value.dtype.is_floating:
            assert value.dtype == tf.float32, name
            assert np.all(np.isfinite(value.numpy())), name


@pytest.mark.parametrize("family", FAMILIES)
def test_a_train_step_with_xla_gives_the_same_loss_as_without(family, monkeypatch):
    """XLA's random streams differ from TensorFlow's, so the VAE's sampling noise is pinned."""
    from models.families.hvae_model import TextVAE

    monkeypatch.setattr(TextVAE, "_training_noise", lambda self, shape: tf.zeros(shape))
    runs = []
    for jit_compile in (False, True):
        tf_keras.utils.set_random_seed(0)
        runs.append(train(family, hparams(family), steps=3, jit_compile=jit_compile)[1])
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-4)
    assert runs[0][-1] < runs[0][0]


def test_a_vae_with_a_code_per_segment_serves_its_whole_z(tmp_path):
    """`latent_per_segment` (the base size's, trained in mixed_bfloat16 as a trial may choose): the
    exported encode, decode, interpolate and generate signatures take z as latent_dim units for
    each of the text's segments."""
    config = hparams("hvae", encoder_summary="local", latent_per_segment=True, decoder_reads_z=True)
    tf_keras.utils.set_random_seed(0)
    model, losses = train("hvae", dataclasses.replace(config, precision="mixed_bfloat16"), steps=2)
    assert np.all(np.isfinite(losses)), losses
    served = tf.saved_model.load(export("hvae", model, config, tmp_path))
    size = SMALL["hvae"]["latent_dim"] * LENGTH // SMALL["hvae"]["segment_length"]
    mu = served.signatures["encode"](text=tf.constant(TEXTS[:2]))["mu"]
    assert mu.shape == (2, size)
    decoded = served.signatures["decode"](z=mu, temperature=tf.constant(0.0), seed=tf.constant(0, tf.int64))["text"]
    assert decoded.shape == (2,)
    between = served.signatures["interpolate"](first=tf.constant(TEXTS[:1]), second=tf.constant(TEXTS[1:2]),
                                               steps=tf.constant(3))["texts"]
    assert between.shape == (1, 3)
    drawn = served.signatures["generate"](num_samples=tf.constant(2), temperature=tf.constant(1.0),
                                          seed=tf.constant(1, tf.int64))["text"]
    assert drawn.shape == (2,)
