"""The whole pipeline through the CLI, on a small slice of real text, in a temporary folder."""

import csv
import glob
import json
import os
import re
import subprocess
import sys
import textwrap

from pathlib import Path

import pytest

from models.runtime.acceleration_trial import TOO_SHORT
from pipeline.config import data_path, load_config
from pipeline_args import FIXED_ACCELERATION

pytestmark = pytest.mark.slow

SMALL_MODEL = [
    "--sequence-length", "64",
    "--set", "rnn.units=32", "--set", "rnn.embedding_dim=16", "--set", "rnn.layers=1",
    "--set", "rnn.train_steps=30", "--set", "rnn.eval_steps=2", "--set", "rnn.batch_size=8",
    "--set", "transformer.layers=1", "--set", "transformer.width=32", "--set", "transformer.ff_width=64",
    "--set", "transformer.context=64", "--set", "transformer.train_steps=30", "--set", "transformer.eval_steps=2",
    "--set", "transformer.batch_size=8", "--set", "transformer.warmup_steps=5",
    "--set", "hvae.embedding_dim=16", "--set", "hvae.encoder_units=32", "--set", "hvae.latent_dim=8",
    "--set", "hvae.conductor_units=32", "--set", "hvae.decoder_units=32", "--set", "hvae.train_steps=30",
    "--set", "hvae.eval_steps=2", "--set", "hvae.batch_size=8",
    "--set", "evaluation.max_cross_entropy=6.0",
    # 30 steps of tiny models do not beat the unigram baseline; the floor has its own tests (test_baseline_gate.py).
    "--set", "evaluation.require_beat_baseline=false",
]


def textflow(*args, cwd):
    """Runs the CLI in a fresh process, as a user would. The timeout only stops a hung run: the
    shared first run (three `auto` trials) took 10-12 minutes alone on a 2-core machine, and
    more beside the other xdist worker."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=1800
    )


def write_reviews(path, rows=60):
    """The first `rows` reviews of the embedded IMDB sample, as JSON lines."""
    with open(data_path(load_config()), newline="", encoding="utf-8") as f:
        reviews = list(csv.DictReader(f))[:rows]
    with open(path, "w", encoding="utf-8") as f:
        for r in reviews:
            f.write(json.dumps({"review": r["text"], "sentiment": r["label"]}) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = write_reviews(root / "reviews.jsonl")
    args = ["run", "--data", data, "--format", "jsonl", "--text-column", "review",
            "--workspace", "ws", "--serving-dir", "serving", *SMALL_MODEL]
    result = textflow(*args, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, args, result


def only(pattern):
    matches = glob.glob(pattern)
    assert len(matches) == 1, (pattern, matches)
    return matches[0]


def test_cli_prints_progress_and_summary_but_no_library_noise(first_run):
    from test_cli_quiet import NOISE

    _, _, result = first_run
    out = result.stdout
    for component in ["TextExampleGen", "StatisticsGen", "TextSchemaGen", "ExampleValidator", "TextValidator", "DataGate",
                      "Transform", "Trainer_rnn", "Evaluator_rnn", "ServingCheck_rnn", "Pusher_rnn", "Trainer_transformer",
                      "Evaluator_transformer", "ServingCheck_transformer", "Pusher_transformer", "Trainer_hvae",
                      "Evaluator_hvae", "ServingCheck_hvae", "Pusher_hvae"]:
        assert f"{component} started" in out and f"{component} finished in" in out
    assert "Summary" in out and "BLESSED" in out and "cross_entropy_per_token" in out
    assert re.search(r"data: \d+ train / \d+ validation / \d+ test examples, span 0\n"
                     r"    skew, validation against train: token \d\.\d+ .*\n    skew, test against train: token \d\.\d+ ", out), out
    assert "negative_elbo_per_token" in out and "active latent units" in out
    assert re.search(r"cross_entropy_per_token by length_bucket: (\d+)(-\d+|\+) tokens \d\.\d+ \(\d+\)", out), out
    assert re.search(r"negative_elbo_per_token by length_bucket: ", out)
    assert re.search(r"nats per test token .*: rnn \d\.\d+, transformer \d\.\d+, hvae \d\.\d+", out), out
    assert out.count("pushed to") == 3
    for trainer in ("Trainer_rnn", "Trainer_transformer", "Trainer_hvae"):  # not a terminal: a line each 10%
        assert re.search(rf"\n  {trainer} step \d+/\d+ \(10%\): loss \d+\.\d+, [\d,]+ tokens/s, about \S+ left\n", out), out
    assert len(re.findall(r"trained on 1 replica\(s\) in (float32|mixed_bfloat16|mixed_float16), bucket batches: [\d.]+% padding "
                          r"\([\d.]+% at the full sequence length\)", out)) == 3, out
    test_examples = int(re.search(r"/ (\d+) test examples, span", out).group(1))
    batch = min(8, test_examples)  # requests of serving_check.batch_size test examples, or all there are
    assert len(re.findall(r"serving check passed: \d signatures called in a separate process; "
                          rf"serving_default p50 [\d.]+ ms, p99 [\d.]+ ms \(100 requests of {batch}\)", out)) == 3, out
    assert all(f"textflow-{family}/" in out for family in ["rnn", "transformer", "hvae"])
    noise = [line for line in (out + result.stderr).splitlines() if any(word in line for word in NOISE)]
    assert not noise and "tensorflow/" not in out + result.stderr and "WARNING" not in out + result.stderr, noise


def test_precision_and_xla_auto_are_timed_and_explained(first_run):
    """The shipped defaults (`precision: auto`, `jit_compile: auto`): each Trainer chose, said why
    in the summary and in training_metrics.json, and trained in what it chose."""
    root, _, result = first_run
    assert len(re.findall(r"\n    precision and XLA auto: \S+( \+ XLA)? \(", result.stdout)) == 3, result.stdout
    for family in ("rnn", "transformer", "hvae"):
        metrics = json.load(open(only(f"{root}/ws/artifacts/Trainer_{family}/model_run/*/training_metrics.json")))
        chosen = metrics["acceleration"]
        assert (metrics["precision"], metrics["jit_compile"]) == (chosen["precision"], chosen["jit_compile"])
        assert chosen["reason"] and chosen["reason"] != "set in the config"
    transformer = json.load(open(only(f"{root}/ws/artifacts/Trainer_transformer/model_run/*/training_metrics.json")))
    trials = {t["candidate"]: t for t in transformer["acceleration"]["trials"]}
    assert trials["float32"]["status"] == "ok" and trials["float32"]["tokens_per_second"] > 0, trials
    # XLA compiles the Transformer, so float32 + XLA is a candidate: timed, or left untried because
    # this short training could not repay its trial, which the summary then says
    xla = trials["float32 + XLA"]
    assert xla["status"] != "skipped" or xla["why"].startswith(TOO_SHORT), xla
    if xla["status"] == "skipped":
        assert "untried against others: " + TOO_SHORT in result.stdout
    # float32 was timed by the training's own first steps (no trial could pay: no child process),
    # or by a trial that took its time
    assert trials["float32"].get("timed_in") == "training" or transformer["acceleration"]["trial_seconds"] > 0


def test_the_test_split_judges_and_never_reaches_the_trainer(first_run):
    """Three splits, one job each: every example lands in one split (hashed), the Trainer fits on
    train and keeps the step best on validation (its eval data), and the Evaluator judges on test."""
    root, _, result = first_run
    art = root / "ws" / "artifacts"
    splits = {s: parsed_records(f"{art}/TextExampleGen/examples/*/Split-{s}/*") for s in ("train", "validation", "test")}
    assert all(splits.values()) and sum(map(len, splits.values())) == 60
    seen = [str(r) for r in splits["train"] + splits["validation"]]
    assert not any(str(r) in seen for r in splits["test"])
    for family in ("rnn", "transformer", "hvae"):
        metrics = json.load(open(only(f"{art}/Trainer_{family}/model_run/*/training_metrics.json")))
        assert (metrics["train_examples"], metrics["eval_examples"]) == (len(splits["train"]), len(splits["validation"]))
    judged = re.findall(r"\((textflow-\w+), [\d,]+ parameters\): .*, (\d+) test examples", result.stdout)
    assert len(judged) == 3 and {int(n) for _, n in judged} == {len(splits["test"])}, result.stdout


def test_the_run_keeps_its_blessing_decisions(first_run):
    root, _, result = first_run
    folder = re.search(r"Blessing decisions and this summary are kept in (\S+)", result.stdout).group(1)
    assert folder.startswith(str(root / "ws" / "runs"))
    decision = json.loads(open(os.path.join(folder, "decision.json")).read())
    assert [f["family"] for f in decision["families"]] == ["rnn", "transformer", "hvae"]
    for family in decision["families"]:
        (check,) = family["thresholds"]  # a first run: value thresholds only, no baseline yet
        assert check["passed"] and check["baseline"] is None and check["threshold"] == 6.0
        assert check["candidate"] == pytest.approx(family["metrics"][check["metric"]])
        assert family["decision"].startswith("blessed: every threshold passed (the trivial-baseline floor was off: "
                                             "evaluation.require_beat_baseline is false); serving check passed; pushed to ")
        assert family["serving_check"]["latency"]["p99_ms"] > 0
        assert family["splits"]["metrics"] == "test" and family["splits"]["training.val_loss"] == "validation"
    assert "Summary" in open(os.path.join(folder, "summary.txt")).read()


def test_the_report_of_a_clean_run_has_every_section_and_the_same_numbers_in_every_form(first_run, tmp_path):
    from test_report import html_text, visible_numbers

    root, _, result = first_run
    page = open(re.search(r"Report: (\S+\.html)", result.stdout).group(1), encoding="utf-8").read()
    run_id = os.path.basename(os.path.dirname(re.search(r"Report: (\S+\.html)", result.stdout).group(1)))
    sections = re.findall(r"<h2>([^<]+)</h2>", page)
    assert sections == ["Run summary", "Data", "Schema", "Anomalies", "Drift and skew", "Model: textflow-rnn (rnn)",
                        "Model: textflow-transformer (transformer)", "Model: textflow-hvae (hvae)", "Pushes and promotions"]
    # a text-length histogram per split (train, validation, test)
    assert page.count('<figure class="chart">') == 3 and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    assert page.count("<h3>Training curve</h3>") == 3  # every family's loss and validation loss against steps
    assert page.count("What it writes") == 2  # the language models' continuations
    assert page.count("What its code holds") == 1 and "Interpolation: texts decoded" in page  # the VAE's
    markdown = textflow("report", "--run", run_id, "--format", "md", "--output", str(tmp_path / "report.md"),
                        "--workspace", "ws", "--serving-dir", "serving", cwd=root)
    assert markdown.returncode == 0, markdown.stderr
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert visible_numbers(html_text(page)) == visible_numbers(re.sub(r"[|#\-]+", " ", text))
    assert text.count("| push | textflow-") == 3  # the three pushes of this run, from the audit log


def test_artifacts_of_every_stage_are_written(first_run):
    root, _, _ = first_run
    art = root / "ws" / "artifacts"
    for split in ("train", "validation", "test"):
        assert os.path.exists(only(f"{art}/StatisticsGen/statistics/*/Split-{split}/FeatureStats.pb"))
    schema = open(only(f"{art}/TextSchemaGen/schema/*/schema.pbtxt")).read()
    assert 'name: "review"' in schema and "natural_language_domain" in schema and "string_domain" not in schema.split('name: "sentiment"')[0]
    assert os.path.exists(only(f"{art}/ExampleValidator/anomalies/*/Split-test/SchemaDiff.pb"))
    assert os.path.exists(only(f"{art}/Transform/transform_graph/*/transform_fn/saved_model.pb"))
    assert os.path.exists(only(f"{art}/Trainer_rnn/model/*/Format-Serving/saved_model.pb"))
    assert os.path.exists(only(f"{art}/Evaluator_rnn/blessing/*/BLESSED"))
    assert os.path.exists(root / "ws" / "metadata.sqlite")
    assert glob.glob(f"{root}/ws/logs/run-*.log")

    import tensorflow_model_analysis as tfma

    (overall,) = [m for m in tfma.load_metrics(only(f"{art}/Evaluator_rnn/evaluation/*"))
                  if not m.slice_key.single_slice_keys]
    values = {kv.key.name: kv.value.double_value.value for kv in overall.metric_keys_and_values}
    assert 0 < values["cross_entropy_per_token"] < 6.0
    sliced = [m for m in tfma.load_metrics(only(f"{art}/Evaluator_rnn/evaluation/*")) if m.slice_key.single_slice_keys]
    counts = {m.slice_key.single_slice_keys[0].bytes_value: [kv.value.double_value.value for kv in m.metric_keys_and_values
                                                             if kv.key.name == "example_count"][0] for m in sliced}
    assert set(counts) <= {b"0-63 tokens", b"64-255 tokens", b"256-1023 tokens", b"1024+ tokens"} and counts
    assert sum(counts.values()) == values["example_count"]  # every eval text falls in exactly one bucket
    assert values["perplexity"] == pytest.approx(2.718281828 ** values["cross_entropy_per_token"], rel=1e-6)
    assert 0 <= values["token_accuracy"] <= 1


# What every client script of a pushed IMDB-review model starts with: load it, build examples.
CLIENT_PRELUDE = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    def example(text):
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
        return tf.train.Example(features=tf.train.Features(feature={"review": feature})).SerializeToString()
    batch = tf.constant([example("A fine film, I liked it."), example("Dull.")])
    """
)

LOAD_IN_FRESH_PROCESS = CLIENT_PRELUDE + textwrap.dedent(
    """
    out = model.signatures["serving_default"](examples=batch)
    transformed = model.signatures["transform_features"](examples=batch)
    def generate(seed, temperature=0.8, top_p=0.95, beam_width=1):
        result = model.signatures["generate"](
            prompt=tf.constant(["This movie was", "I"]), max_new_tokens=tf.constant(12),
            temperature=tf.constant(temperature), top_k=tf.constant(5), top_p=tf.constant(top_p),
            beam_width=tf.constant(beam_width), seed=tf.constant(seed, tf.int64))
        return [t.decode() for t in result["continuation"].numpy()]
    print(json.dumps({"log_likelihood": out["log_likelihood"].numpy().tolist(),
                      "token_count": out["token_count"].numpy().tolist(),
                      "correct_tokens": out["correct_tokens"].numpy().tolist(),
                      "input_ids_shape": transformed["input_ids"].shape.as_list(),
                      "generated": [generate(7), generate(7), generate(8), generate(0, temperature=0.0),
                                    generate(0, beam_width=3), generate(9, beam_width=3)]}))
    """
)


def run_in_fresh_process(script_text, version_dir, tmp_path):
    """Runs `script_text` on a pushed model in a new Python process without the project on
    its path (as a serving client would be); returns the JSON its last line prints."""
    script = tmp_path / "client.py"
    script.write_text(script_text)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(script), version_dir], cwd=tmp_path, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_pushed_model_serves_in_a_fresh_process_without_project_code(first_run, tmp_path, family):
    root, _, _ = first_run
    version_dir = only(f"{root}/serving/textflow-{family}/*")
    assert os.path.basename(version_dir).isdigit()
    assert os.path.exists(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.exists(os.path.join(version_dir, "variables"))
    out = run_in_fresh_process(LOAD_IN_FRESH_PROCESS, version_dir, tmp_path)
    assert out["token_count"] == [25, 6]  # characters + EOS
    assert all(0 <= correct <= count for correct, count in zip(out["correct_tokens"], out["token_count"]))
    assert all(-1000 < ll < 0 for ll in out["log_likelihood"])
    assert out["input_ids_shape"] == [2, 64]
    same_seed, again, other_seed, greedy, beam, beam_other_seed = out["generated"]
    assert same_seed == again and same_seed != other_seed  # deterministic for a fixed seed
    assert all(isinstance(text, str) and 0 < len(text) <= 12 for text in same_seed + greedy)  # characters
    assert beam == beam_other_seed and all(isinstance(text, str) and len(text) <= 12 for text in beam)  # no sampling
    assert warmup_signatures(version_dir) == ["generate", "serving_default", "transform_features"]
    from components.training.model_description import read_description

    described = read_description(version_dir)  # what a later run needs to start from this model
    assert (described["family"], described["task"], described["kind"], described["tokenizer"]) == (
        family, "language_model", "language_model", "char")
    assert os.path.exists(os.path.join(version_dir, "assets", described["vocabulary"]))
    assert described["hparams"]["size"] in ("small", "base") and described["vocab_size"] > 10


def warmup_signatures(version_dir):
    """The signatures the pushed model's TensorFlow Serving warm-up requests call."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    return sorted(log.predict_log.request.model_spec.signature_name for log in logs)


VAE_IN_FRESH_PROCESS = CLIENT_PRELUDE + textwrap.dedent(
    """
    served = model.signatures["serving_default"](examples=batch)
    evaluated = model.signatures["evaluate"](examples=batch)
    encoded = model.signatures["encode"](text=tf.constant(["A fine film.", "Dull."]))
    def decode(seed, temperature):
        out = model.signatures["decode"](z=encoded["mu"], temperature=tf.constant(temperature), seed=tf.constant(seed, tf.int64))
        return [t.decode() for t in out["text"].numpy()]
    between = model.signatures["interpolate"](first=tf.constant(["A fine film."]), second=tf.constant(["Dull."]),
                                              steps=tf.constant(4))["texts"]
    def generate(seed):
        out = model.signatures["generate"](num_samples=tf.constant(3), temperature=tf.constant(1.0), seed=tf.constant(seed, tf.int64))
        return [t.decode() for t in out["text"].numpy()]
    print(json.dumps({
        "signatures": sorted(model.signatures),
        "served": {k: v.numpy().tolist() for k, v in served.items()},
        "evaluated": sorted(evaluated),
        "mu_shape": encoded["mu"].shape.as_list(), "sigma": encoded["sigma"].numpy().tolist(),
        "greedy": [decode(1, 0.0), decode(2, 0.0)], "sampled": [decode(3, 1.0), decode(3, 1.0), decode(4, 1.0)],
        "between_shape": between.shape.as_list(),
        "generated": [generate(5), generate(5), generate(6)],
    }))
    """
)


def test_pushed_vae_serves_every_signature_in_a_fresh_process(first_run, tmp_path):
    root, _, _ = first_run
    version_dir = only(f"{root}/serving/textflow-hvae/*")
    out = run_in_fresh_process(VAE_IN_FRESH_PROCESS, version_dir, tmp_path)
    assert out["signatures"] == ["decode", "encode", "evaluate", "generate", "interpolate", "serving_default",
                                 "transform_features"]
    assert out["served"]["token_count"] == [25, 6]  # characters + EOS
    assert all(nelbo > 0 and kl >= 0 for nelbo, kl in zip(out["served"]["negative_elbo"], out["served"]["kl"]))
    assert {"sampled_hits", "teacher_forced_hits", "mu"} <= set(out["evaluated"])
    assert out["mu_shape"] == [2, 8] and all(s > 0 for row in out["sigma"] for s in row)
    assert out["greedy"][0] == out["greedy"][1]  # greedy ignores the seed
    same, again, other = out["sampled"]
    assert same == again and same != other
    assert out["between_shape"] == [1, 4]
    assert out["generated"][0] == out["generated"][1] != out["generated"][2]
    assert all(isinstance(t, str) and len(t) <= 64 for t in out["generated"][0])
    assert warmup_signatures(version_dir) == out["signatures"]


def test_second_run_reuses_the_cache_and_pushes_nothing_new(first_run):
    root, args, _ = first_run
    before = sorted(os.listdir(root / "serving" / "textflow-rnn"))
    result = textflow(*args, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ["TextExampleGen", "StatisticsGen", "Transform", "Trainer_rnn", "Trainer_transformer", "Trainer_hvae"]:
        assert re.search(rf"{component} finished in [\d.]+s \(cached\)", result.stdout), component
    assert "change threshold" in result.stdout  # the first run's model is now the baseline
    assert sorted(os.listdir(root / "serving" / "textflow-rnn")) == before


def test_missing_text_column_is_a_clear_error_and_pushes_nothing(first_run):
    root, _, _ = first_run
    pushed_before = sorted(os.listdir(root / "serving" / "textflow-rnn"))
    data = write_reviews(root / "reviews2.jsonl", rows=10)
    result = textflow("run", *FIXED_ACCELERATION, "--data", data, "--format", "jsonl", "--text-column", "body",
                      "--workspace", "ws", "--serving-dir", "serving", *SMALL_MODEL, cwd=root)
    assert result.returncode == 3, result.stdout + result.stderr
    message = " ".join(result.stderr.split())  # the CLI wraps long lines
    assert "bad input data" in message and "reviews2.jsonl, line 1: no field 'body'" in message
    assert "Traceback" not in result.stderr + result.stdout
    assert "TextExampleGen FAILED" in result.stdout
    assert sorted(os.listdir(root / "serving" / "textflow-rnn")) == pushed_before


def test_promote_a_blessed_push_and_refuse_an_unblessed_model(first_run):
    root, _, _ = first_run
    where = ["--workspace", "ws", "--serving-dir", "serving"]
    version = os.path.basename(only(f"{root}/serving/textflow-rnn/*"))
    result = textflow("promote", "textflow-rnn", version, "--label", "stable", "--reason", "first", *where, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"textflow-rnn: stable -> version {version}" in result.stdout
    predicted = textflow("predict", "textflow-rnn", "--label", "stable", "--text", "A fine film.", "--text-column", "review",
                         *where, cwd=root)
    assert predicted.returncode == 0, predicted.stderr
    assert f"textflow-rnn version {version}" in predicted.stdout and "token_count: 13" in predicted.stdout
    assert re.search(r"log_likelihood: -\d+\.\d+", predicted.stdout)

    handmade = root / "serving" / "textflow-handmade" / "5"  # copied in by hand: no run blessed it
    handmade.mkdir(parents=True)
    (handmade / "saved_model.pb").write_bytes(b"")
    refused = textflow("promote", "textflow-handmade", "5", "--label", "canary", *where, cwd=root)
    assert refused.returncode == 2 and "has no blessing" in refused.stderr and "--force" in refused.stderr
    forced = textflow("promote", "textflow-handmade", "5", "--label", "canary", "--force", "--reason", "hotfix", *where, cwd=root)
    assert forced.returncode == 0, forced.stderr

    entries = [json.loads(line) for line in (root / "serving" / "audit.jsonl").read_text().splitlines()]
    push = [e for e in entries if e["model"] == "textflow-rnn"][0]
    assert (push["action"], push["version"]) == ("push", int(version)) and len(push["evaluation_sha256"]) == 64
    rnn, handmade_entry = [e for e in entries if e["model"] == "textflow-rnn"][-1], entries[-1]
    assert rnn["action"] == "promote" and rnn["version"] == int(version) and len(rnn["evaluation_sha256"]) == 64
    assert push["evaluation_sha256"] == rnn["evaluation_sha256"]  # the push and the promotion rest on one evaluation
    assert handmade_entry["evaluation_sha256"] is None and handmade_entry["reason"] == "forced, not blessed: hotfix"
    shown = textflow("models", "history", "textflow-rnn", *where, cwd=root)
    assert shown.returncode == 0 and f"promote stable  version {version}  (first)" in shown.stdout
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse((root / "serving" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    served = {c.name: dict(c.version_labels) for c in config.model_config_list.config}
    assert served == {"textflow-rnn": {"stable": int(version)}, "textflow-handmade": {"canary": 5}}


def test_predict_runs_any_signature_from_the_command_line(first_run):
    root, _, _ = first_run
    where = ["--workspace", "ws", "--serving-dir", "serving"]
    generated = textflow("predict", "textflow-transformer", "--signature", "generate", "--text", "This movie was",
                         "--max-new-tokens", "12", "--beam-width", "2", *where, cwd=root)
    assert generated.returncode == 0, generated.stderr
    assert re.match(r"textflow-transformer version \d+, generate:\n  continuation: ", generated.stdout), generated.stdout
    interpolated = textflow("predict", "textflow-hvae", "--signature", "interpolate", "--first", "A fine film.",
                            "--second", "Dull and slow.", "--steps", "3", *where, cwd=root)
    assert interpolated.returncode == 0, interpolated.stderr
    lines = interpolated.stdout.splitlines()
    assert re.fullmatch(r"textflow-hvae version \d+, interpolate:", lines[0]) and lines[1] == "  texts:"
    assert len(lines) >= 5 and lines[2].startswith("    ")  # three texts, one a line (more if a text holds a line break)
    wrong = textflow("predict", "textflow-hvae", "--signature", "interpolate", "--first", "A", "--sideways", "1", *where, cwd=root)
    assert wrong.returncode == 2 and "takes no input sideways" in " ".join(wrong.stderr.split()) and "--second" in wrong.stderr


def test_models_list_and_show_read_ml_metadata(first_run):
    root, _, _ = first_run
    where = ["--workspace", "ws", "--serving-dir", "serving"]
    version = os.path.basename(only(f"{root}/serving/textflow-hvae/*"))
    listed = textflow("models", "list", *where, cwd=root)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert {"textflow-rnn", "textflow-transformer", "textflow-hvae"} <= set(rows)
    assert re.search(rf"{version} .* negative_elbo_per_token \d+\.\d+ +yes +pass ", rows["textflow-hvae"])
    shown = textflow("models", "show", "textflow-hvae", version, *where, cwd=root)
    assert shown.returncode == 0, shown.stderr
    for expected in ["(hvae)", "blessed: yes", "serving check: passed", "interpolate: outputs {'texts': [","sampled_reconstruction_accuracy", "active_units",
                     "shuffled_z_nll_gap", "edit_similarity", "shuffled_z_edit_similarity", "data span: 0",
                     "transform_graph: ", "/Transform/transform_graph/", "schema: "]:
        assert expected in shown.stdout, (expected, shown.stdout)
    missing = textflow("models", "show", "textflow-hvae", "1", *where, cwd=root)
    assert missing.returncode == 2 and "textflow-hvae has no pushed version 1" in missing.stderr


def parsed_records(pattern):
    """The tf.Examples of TFRecord files, as sorted feature maps (a map's byte order is not stable across processes)."""
    import tensorflow as tf

    records = tf.data.TFRecordDataset(sorted(glob.glob(pattern)), compression_type="GZIP")
    return sorted(sorted((k, str(v)) for k, v in tf.train.Example.FromString(r.numpy()).features.feature.items())
                  for r in records)


def test_multi_processing_direct_runner_gives_the_default_modes_results(first_run):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    root, _, _ = first_run
    args = ["run", *FIXED_ACCELERATION, "--data", str(root / "reviews.jsonl"), "--format", "jsonl", "--text-column", "review",
            "--workspace", "ws-mp", "--serving-dir", "serving-mp", "--models", "rnn", *SMALL_MODEL,
            "--set", "beam_args=[--direct_running_mode=multi_processing, --direct_num_workers=2]"]
    result = textflow(*args, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    default, multi = root / "ws" / "artifacts", root / "ws-mp" / "artifacts"
    for split in ("train", "validation", "test"):
        for component, output in (("TextExampleGen", "examples"), ("Transform", "transformed_examples")):
            same = [parsed_records(f"{art}/{component}/{output}/*/Split-{split}/*") for art in (default, multi)]
            assert same[0] and same[0] == same[1], (component, split)
        stats = [statistics_pb2.DatasetFeatureStatisticsList.FromString(
            Path(only(f"{art}/StatisticsGen/statistics/*/Split-{split}/FeatureStats.pb")).read_bytes()) for art in (default, multi)]
        assert stats[0] == stats[1], split
    for pattern in ("TextSchemaGen/schema/*/schema.pbtxt", "Transform/transform_graph/*/transform_fn/assets/tokens"):
        assert Path(only(f"{default}/{pattern}")).read_bytes() == Path(only(f"{multi}/{pattern}")).read_bytes(), pattern
    counts = [re.search(r"rnn \(textflow-rnn.*?(\d+) test examples", out).group(1) for out in (first_run[2].stdout, result.stdout)]
    assert counts[0] == counts[1]  # the Evaluator saw the same test split (the models differ: training is not deterministic)


def test_a_candidate_worse_than_its_baseline_is_not_blessed_nor_pushed(first_run):
    """In the first run's workspace (last in this module: it adds a candidate the others do not
    expect), the RNN trained for one step is judged against the RNN that run blessed."""
    root, args, _ = first_run
    pushed = sorted(os.listdir(root / "serving" / "textflow-rnn"))
    # One training step: still under the value threshold (6 nats), far above the baseline.
    worse = textflow(*args, "--models", "rnn", "--set", "rnn.train_steps=1", cwd=root)
    assert worse.returncode == 0, worse.stdout + worse.stderr
    assert "NOT BLESSED:" in worse.stdout and "    not pushed" in worse.stdout, worse.stdout
    assert re.search(r"pass: cross_entropy_per_token \d\.\d+ <= 6\.0000 \(value threshold\)", worse.stdout)
    assert re.search(r"FAIL: cross_entropy_per_token change \+\d\.\d+ vs baseline \d\.\d+ <= \+0\.0500", worse.stdout)
    assert sorted(os.listdir(root / "serving" / "textflow-rnn")) == pushed
    folder = re.search(r"kept in (\S+)", worse.stdout).group(1)
    (family,) = json.loads(open(os.path.join(folder, "decision.json")).read())["families"]
    assert family["decision"].startswith("not blessed: cross_entropy_per_token change +") and family["pushed_to"] is None
    value, change = family["thresholds"]
    assert change["kind"] == "change" and not change["passed"] and change["baseline"] < change["candidate"]
