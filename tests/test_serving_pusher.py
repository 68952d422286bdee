"""Atomic pushes: a new integer version each time, never a rewrite, nothing half-written."""

import os

import pytest

from components.serving import serving_pusher
from components.serving.serving_pusher import find_pushed_copy, push_atomically


def make_model(root, name, fingerprint: bytes):
    path = root / name
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"graph-" + fingerprint)
    (path / "fingerprint.pb").write_bytes(fingerprint)
    (path / "variables" / "variables.index").write_bytes(b"index")
    return str(path)


def test_push_creates_increasing_versions_and_never_rewrites(tmp_path):
    base = str(tmp_path / "serving" / "m")
    first = push_atomically(make_model(tmp_path, "a", b"A"), base)
    second = push_atomically(make_model(tmp_path, "b", b"B"), base)
    assert second > first
    assert sorted(os.listdir(base)) == sorted([str(first), str(second)])  # no temporary leftovers
    with open(os.path.join(base, str(first), "fingerprint.pb"), "rb") as f:
        assert f.read() == b"A"


def test_the_same_model_is_found_instead_of_pushed_again(tmp_path):
    base = str(tmp_path / "serving" / "m")
    model = make_model(tmp_path, "a", b"A")
    version = push_atomically(model, base)
    assert find_pushed_copy(model, base) == version
    assert find_pushed_copy(make_model(tmp_path, "b", b"B"), base) is None


def test_a_failed_copy_leaves_the_serving_dir_as_it_was(tmp_path, monkeypatch):
    base = str(tmp_path / "serving" / "m")
    version = push_atomically(make_model(tmp_path, "a", b"A"), base)

    def broken_copy(src, dst):
        os.makedirs(dst)
        open(os.path.join(dst, "saved_model.pb"), "wb").close()
        raise OSError("disk full")

    monkeypatch.setattr(serving_pusher.io_utils, "copy_dir", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        push_atomically(make_model(tmp_path, "b", b"B"), base)
    assert os.listdir(base) == [str(version)]


def test_a_killed_push_leaves_no_version_and_its_copy_is_removed_by_the_next(tmp_path):
    import subprocess
    import sys

    base = tmp_path / "serving" / "m"
    version = push_atomically(make_model(tmp_path, "a", b"A"), str(base))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = base / f".tmp-{version + 1}-{int(dead.stdout)}"  # what a push killed mid-copy leaves
    running = base / f".tmp-{version + 1}-{os.getppid()}"  # a push still copying, in a live process
    for staging in (abandoned, running):
        staging.mkdir()
        (staging / "saved_model.pb").write_bytes(b"half")
    assert serving_pusher._versions(str(base)) == [version]  # TensorFlow Serving sees only whole versions
    newer = push_atomically(make_model(tmp_path, "b", b"B"), str(base))
    assert sorted(os.listdir(base)) == sorted([str(version), str(newer), running.name])
