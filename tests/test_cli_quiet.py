"""Commands other than `run` print their own lines only, and the light ones start no TensorFlow."""

import subprocess
import sys
from pathlib import Path

import pytest

NOISE = ("cuda", "TensorRT", "FutureWarning", "absl", "oneDNN", "warnings.warn", "I0000", "W0000", "E0000")
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("quiet")
    (root / "serving" / "textflow-rnn" / "1").mkdir(parents=True)
    (root / "serving" / "textflow-rnn" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    (root / "workspace").mkdir()
    return root


def textflow(root, *args):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=root, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, code, says", [
    (["--help"], 0, None),
    (["models", "history", "textflow-rnn"], 0, "no pushes or promotions recorded"),
    (["rollback", "textflow-rnn"], 2, "no earlier stable version"),
    (["promote", "textflow-rnn", "1", "--label", "stable"], 2, "has no blessing"),
    (["predict", "textflow-rnn", "--text", "a film"], 2, "is not a SavedModel TensorFlow can load"),
    (["models", "list", "--config", "missing.yaml"], 2, "configuration error"),
])
def test_a_command_prints_only_its_own_lines(root, args, code, says):
    result = textflow(root, *args)
    assert result.returncode == code, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert not [line for line in lines if any(word in line for word in NOISE)], result.stderr
    if says:
        assert says in " ".join((result.stdout + result.stderr).split())  # errors are wrapped paragraphs
    if code == 2:
        assert result.stderr.startswith("textflow: ")


def test_library_output_goes_to_the_workspace_log_and_verbose_shows_it(root):
    textflow(root, "predict", "textflow-rnn", "--text", "a film")
    logs = list((root / "workspace" / "logs").glob("predict-*.log"))
    assert logs and any("cuda" in log.read_text() or "FutureWarning" in log.read_text() for log in logs)
    verbose = textflow(root, "predict", "textflow-rnn", "--text", "a film", "--verbose")
    assert verbose.returncode == 2 and any(word in verbose.stderr for word in NOISE)


@pytest.mark.parametrize("args", [["models", "history", "textflow-rnn"], ["rollback", "textflow-rnn"], ["--help"]])
def test_light_commands_do_not_import_tensorflow(root, args):
    script = (
        "import sys\nfrom pipeline.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules, 'tfx' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=root, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip().splitlines()[-1] == "False False", result.stdout + result.stderr
