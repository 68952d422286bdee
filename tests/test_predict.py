"""`textflow predict`: any signature of a pushed SavedModel, its inputs read from the model."""

import pytest
import tensorflow as tf

from pipeline.config import load_config
from operations.model_commands import predict
from operations.promotion import PromotionError


class Served(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                  tf.TensorSpec([], tf.int32, name="max_new_tokens"),
                                  tf.TensorSpec([], tf.float32, name="temperature")])
    def generate(self, prompt, max_new_tokens, temperature):
        suffix = tf.strings.as_string(max_new_tokens) + "@" + tf.strings.as_string(temperature, precision=1)
        return {"continuation": prompt + " ... " + suffix}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="z")])
    def decode(self, z):
        return {"texts": tf.strings.as_string(tf.reduce_sum(z, axis=1), precision=2)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="first"),
                                  tf.TensorSpec([None], tf.string, name="second"),
                                  tf.TensorSpec([], tf.int32, name="steps")])
    def interpolate(self, first, second, steps):
        return {"texts": tf.stack([first, first + "|" + second, second], axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        parsed = tf.io.parse_example(examples, {"review": tf.io.FixedLenFeature([], tf.string)})
        return {"length": tf.strings.length(parsed["review"]), "score": tf.constant([[0.25, 0.75]])}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    module = Served()
    signatures = {"generate": module.generate.get_concrete_function(), "decode": module.decode.get_concrete_function(),
                  "interpolate": module.interpolate.get_concrete_function(),
                  "serving_default": module.serve.get_concrete_function()}
    tf.saved_model.save(module, str(root / "serving" / "textflow-x" / "1"), signatures=signatures)
    config = load_config(None, {"workspace": str(root / "ws"), "serving_dir": str(root / "serving")})
    return config, str(root / "serving")


def run(served, signature, text=None, **options):
    config, serving = served
    return predict(config, serving, "textflow-x", None, None, text, "review", signature,
                   {k: str(v) for k, v in options.items()})


def test_generate_takes_its_inputs_as_options_with_decoding_defaults(served):
    assert run(served, "generate", "This movie", max_new_tokens=7).splitlines() == [
        "textflow-x version 1, generate:", "  continuation: This movie ... 7@0.0"]
    assert run(served, "generate", "Hi").endswith("Hi ... 40@0.0")  # greedy, 40 tokens unless given


def test_vectors_texts_of_their_own_and_examples(served):
    assert run(served, "decode", z="0.5,0.25,1").splitlines()[1] == "  texts: 1.75"
    assert run(served, "interpolate", first="a", second="b", steps=3).splitlines()[1:] == [
        "  texts:", "    a", "    a|b", "    b"]
    assert run(served, "serving_default", "A fine film.").splitlines()[1:] == ["  length: 12", "  score: [0.25, 0.75]"]


@pytest.mark.parametrize("signature, text, options, message", [
    ("generate", "x", {"sideways": 1}, "takes no input sideways"),
    ("decode", None, {"z": "1,2"}, "takes 3 comma-separated numbers"),
    ("decode", None, {}, "needs --z"),
    ("generate", "x", {"max_new_tokens": "2.5"}, "whole numbers"),
    ("interpolate", None, {"first": "a", "steps": 3}, "needs --second"),
    ("serving_default", None, {}, "give --text"),
    ("nothing", "x", {}, "has no signature 'nothing' (it has: decode, generate, interpolate, serving_default)"),
])
def test_wrong_inputs_are_named(served, signature, text, options, message):
    with pytest.raises(PromotionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(served, signature, text, **options)
