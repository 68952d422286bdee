"""Promotion state: labels, rollback, models.config as TensorFlow Serving reads it, the audit log."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from google.protobuf import text_format

from operations import promotion
from components.serving.serving_audit import history
from operations.promotion import MODELS_CONFIG, STATE_FILE, PromotionError, promote, read_state, rollback


def push(serving, model, version):
    folder = serving / model / str(version)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")


def served_labels(serving):
    """Parses models.config as TensorFlow Serving's ModelServerConfig; {name: (versions, labels)}."""
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse((serving / MODELS_CONFIG).read_text(), model_server_config_pb2.ModelServerConfig())
    return {
        c.name: (sorted(c.model_version_policy.specific.versions), dict(c.version_labels), c.base_path)
        for c in config.model_config_list.config
    }


@pytest.fixture
def serving(tmp_path):
    serving = tmp_path / "serving"
    for version in (11, 12, 13):
        push(serving, "textflow-rnn", version)
    return serving


def test_promote_canary_and_roll_back(serving):
    promote(str(serving), "textflow-rnn", 11, "stable", reason="first")
    promote(str(serving), "textflow-rnn", 12, "stable")
    promote(str(serving), "textflow-rnn", 13, "canary", reason="try it")
    versions, labels, base = served_labels(serving)["textflow-rnn"]
    assert versions == [12, 13] and labels == {"stable": 12, "canary": 13}
    assert base == str(serving / "textflow-rnn")

    rollback(str(serving), "textflow-rnn", reason="regression")
    versions, labels, _ = served_labels(serving)["textflow-rnn"]
    assert versions == [11, 13] and labels == {"stable": 11, "canary": 13}
    with pytest.raises(PromotionError, match="no earlier stable version"):
        rollback(str(serving), "textflow-rnn")

    log = history(str(serving), "textflow-rnn")
    assert [(e["action"], e["version"], e["label"]) for e in log] == [
        ("promote", 11, "stable"), ("promote", 12, "stable"), ("promote", 13, "canary"), ("rollback", 11, "stable")
    ]
    assert log[0]["reason"] == "first" and log[3]["reason"] == "regression" and all(e["user"] and e["time"] for e in log)


def test_unknown_versions_and_labels_are_refused_and_change_nothing(serving):
    promote(str(serving), "textflow-rnn", 11, "stable")
    before = (serving / MODELS_CONFIG).read_text()
    with pytest.raises(PromotionError, match=r"no pushed version 99 .*\(pushed: 11, 12, 13\)"):
        promote(str(serving), "textflow-rnn", 99, "stable")
    with pytest.raises(PromotionError, match="unknown label 'prod'"):
        promote(str(serving), "textflow-rnn", 12, "prod")
    assert (serving / MODELS_CONFIG).read_text() == before
    assert len(history(str(serving))) == 1


def test_the_audit_log_is_only_appended_to(serving):
    promote(str(serving), "textflow-rnn", 11, "stable")
    first = (serving / "audit.jsonl").read_bytes()
    promote(str(serving), "textflow-rnn", 12, "canary")
    assert (serving / "audit.jsonl").read_bytes().startswith(first)


def test_a_promotion_killed_before_its_rename_leaves_the_previous_state(serving):
    promote(str(serving), "textflow-rnn", 11, "stable")
    before = (serving / MODELS_CONFIG).read_text()
    script = textwrap.dedent(
        f"""
        import os, signal
        from operations import promotion
        promotion._before_rename = lambda staging, path: os.kill(os.getpid(), signal.SIGKILL)
        promotion.promote({str(serving)!r}, "textflow-rnn", 12, "stable")
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)))
    assert killed.returncode == -9
    assert [name for name in os.listdir(serving) if ".tmp-" in name]  # killed after writing, before renaming
    assert (serving / MODELS_CONFIG).read_text() == before
    assert len(history(str(serving))) == 1  # nothing logged for a promotion that did not happen
    promote(str(serving), "textflow-rnn", 12, "stable")  # the lock died with the process
    assert served_labels(serving)["textflow-rnn"][1] == {"stable": 12}
    assert not [name for name in os.listdir(serving) if ".tmp-" in name]  # the leftover was cleared


def test_a_second_promotion_waits_its_turn(serving):
    with promotion.promotion_lock(str(serving)):
        with pytest.raises(PromotionError, match="another promotion"):
            promote(str(serving), "textflow-rnn", 11, "stable")


def test_a_models_config_written_by_hand_is_not_overwritten(serving):
    (serving / MODELS_CONFIG).write_text("model_config_list {}\n")
    with pytest.raises(PromotionError, match="not written by textflow"):
        promote(str(serving), "textflow-rnn", 11, "stable")
    assert json.dumps((serving / MODELS_CONFIG).read_text()) == json.dumps("model_config_list {}\n")


def test_models_config_is_a_model_server_config_that_round_trips(serving):
    from tensorflow_serving.config import model_server_config_pb2

    promote(str(serving), "textflow-rnn", 11, "stable")
    promote(str(serving), "textflow-rnn", 13, "canary")
    text = (serving / MODELS_CONFIG).read_text()
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert text_format.MessageToString(parsed) == text
    assert "textflow-state" not in text  # the state lives in labels.json
    state = json.loads((serving / STATE_FILE).read_text())["models"]
    assert state == {"textflow-rnn": {"labels": {"stable": 11, "canary": 13}, "stable_history": [11]}}


def test_a_serving_directory_of_the_comment_form_is_migrated(serving):
    record = {"textflow-rnn": {"labels": {"stable": 12, "canary": 13}, "stable_history": [11, 12]}}
    (serving / MODELS_CONFIG).write_text(
        "# textflow-state: " + json.dumps(record) + "\nmodel_config_list {\n  config {\n    name: \"textflow-rnn\"\n"
        f'    base_path: "{serving / "textflow-rnn"}"\n    model_platform: "tensorflow"\n'
        "    model_version_policy {\n      specific {\n        versions: 12\n        versions: 13\n      }\n    }\n"
        '    version_labels { key: "canary" value: 13 }\n    version_labels { key: "stable" value: 12 }\n  }\n}\n')
    assert read_state(str(serving))["textflow-rnn"].stable_history == [11, 12]  # read as it is
    rollback(str(serving), "textflow-rnn", reason="migrated")
    assert served_labels(serving)["textflow-rnn"][:2] == ([11, 13], {"stable": 11, "canary": 13})
    assert json.loads((serving / STATE_FILE).read_text())["models"]["textflow-rnn"] == {
        "labels": {"stable": 11, "canary": 13}, "stable_history": [11]}
    assert "textflow-state" not in (serving / MODELS_CONFIG).read_text()


def snapshot(serving):
    return {name: (serving / name).read_bytes() for name in (MODELS_CONFIG, STATE_FILE, "audit.jsonl")
            if (serving / name).exists()}


@pytest.mark.parametrize("corrupt", [
    "{not json", '{"models": {"textflow-rnn": {"labels": {"stable": "x"}, "stable_history": []}}}',
    '{"models": {"textflow-rnn": {"labels": {"stable": 99}, "stable_history": [99]}}}',
    '{"models": {"../outside": {"labels": {}, "stable_history": []}}}',
])
def test_a_hand_corrupted_state_file_is_named_and_left_alone(serving, corrupt):
    promote(str(serving), "textflow-rnn", 11, "stable")
    (serving / STATE_FILE).write_text(corrupt)
    before = snapshot(serving)
    for change in (lambda: promote(str(serving), "textflow-rnn", 12, "stable"), lambda: rollback(str(serving), "textflow-rnn"),
                   lambda: read_state(str(serving))):
        with pytest.raises(PromotionError, match=str(serving / STATE_FILE)):
            change()
    assert snapshot(serving) == before


@pytest.mark.parametrize("corrupt", ["model_config_list { config { name: ", 
                                     'model_config_list { config { name: "textflow-rnn" base_path: "/elsewhere" } }'])
def test_a_broken_models_config_is_named_and_left_alone(serving, corrupt):
    promote(str(serving), "textflow-rnn", 11, "stable")
    (serving / MODELS_CONFIG).write_text(corrupt)
    before = snapshot(serving)
    with pytest.raises(PromotionError, match=str(serving / MODELS_CONFIG)):
        promote(str(serving), "textflow-rnn", 12, "stable")
    assert snapshot(serving) == before


BAD_NAMES = ["..", "../outside", "textflow-rnn/11", "/abs", "-x", 'a"b', "a\nb", "notes.txt", "missing", "a" * 129]


def test_bad_model_names_and_versions_are_refused_by_every_command_and_change_nothing(serving, tmp_path, capfd):
    from pipeline.cli import main

    push(tmp_path, "outside", 7)  # a SavedModel next to the serving directory
    (serving / "notes.txt").write_text("a file, not a model")
    promote(str(serving), "textflow-rnn", 11, "stable")
    promote(str(serving), "textflow-rnn", 12, "stable")
    before = snapshot(serving)
    where = ["--serving-dir", str(serving), "--workspace", str(tmp_path / "ws")]
    for name in BAD_NAMES:
        for command, positionals in ((["promote", "--label", "stable", "--force", "--reason", "test"], [name, "7"]),
                                     (["rollback"], [name]), (["models", "show"], [name, "7"]),
                                     (["models", "history"], [name]), (["predict", "--text", "x"], [name])):
            command = [*command, *where, "--", *positionals]  # "--": a name starting with '-' reaches the command
            assert main(command) == 2, command
            error = capfd.readouterr().err
            assert "not a served model name" in error or "no served model" in error or "is a file" in error, error
    for version, message in (("0", "positive integer"), ("-3", "positive integer"), ("99", "no pushed version 99")):
        command = ["promote", "--label", "stable", "--force", "--reason", "t", *where, "--", "textflow-rnn", version]
        assert main(command) == 2
        assert message in capfd.readouterr().err
    assert snapshot(serving) == before
    with pytest.raises(PromotionError, match="positive integer"):
        promote(str(serving), "textflow-rnn", 0, "stable")
    with pytest.raises(PromotionError, match="not a served model name"):
        promote(str(serving), "../outside", 7, "stable")
