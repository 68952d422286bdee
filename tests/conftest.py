"""Test configuration: Keras 2 before TensorFlow is imported, and shared fixtures."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the same Keras the pipeline uses (DESIGN.md section 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

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
