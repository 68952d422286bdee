"""Test configuration: Keras 2 before TensorFlow is imported, and shared fixtures."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the same Keras the pipeline uses (docs/architecture.md)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

# precision/jit_compile auto: the timed trials' choices are cached for this test session only (a
# developer's cache must not change what the tests run); the pipelines run in
# subprocesses, which inherit it
os.environ["TEXTFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="textflow-test-cache-")

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def write(tmp_path):
    """write(name, text_or_bytes) -> path of a new file in the test's temporary folder."""

    def _write(name: str, content) -> str:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    return _write


# `make test` runs the files on one pytest-xdist worker per core (`--dist loadfile`: a file's
# module-scoped pipeline runs happen once, on one worker), in the order of this list first: the
# longest files (measured with --durations) start first and the short ones fill in at the end.
LONGEST_FIRST = ["test_end_to_end", "test_acceleration", "test_seq2seq_pipeline", "test_data_gate_end_to_end",
                 "test_mirrored_strategy", "test_baseline_gate", "test_classifier_end_to_end", "test_tagger_pipeline",
                 "test_denoise_pipeline", "test_multi_worker", "test_baseline_gate_language_model", "test_fine_tuning"]


def pytest_collection_modifyitems(config, items):
    """Orders the files as LONGEST_FIRST says (the others after them, as collected)."""
    def rank(item) -> int:
        module = item.module.__name__
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the tests of a file keep their order
