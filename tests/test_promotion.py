"""Promotion state: labels, rollback, models.config as TensorFlow Serving reads it, the audit log."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from google.protobuf import text_format

from pipeline import promotion
from components.serving_audit import history
from pipeline.promotion import MODELS_CONFIG, PromotionError, promote, rollback


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
        from pipeline import promotion
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
