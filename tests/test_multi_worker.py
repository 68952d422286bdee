"""Two workers over loopback (`--trainer-workers 2`): the Transformer language model of the
embedded default trains as one process does with the same global batch, seed and steps, only
the chief's export is pushed, and a worker killed mid-training resumes with the others from
the last backup."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_args import FIXED_ACCELERATION

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def fixed_steps(steps: int, precision_set: bool = True) -> list[str]:
    """The transformer alone, trained exactly `steps` steps (no pass limit, no early stop, no budget)."""
    return ["--models", "transformer", "--set", f"transformer.train_steps={steps}", "--set", "transformer.train_epochs=1000",
            "--set", "transformer.patience=1000", "--set", "transformer.train_minutes=0",
            "--workspace", "ws", "--serving-dir", "serving", *(FIXED_ACCELERATION if precision_set else [])]


def environment(scratch: Path) -> dict:
    """The run's environment, its temporary files in `scratch` (where a worker's copies go)."""
    return {**os.environ, "TMPDIR": str(scratch), "PYTHONUNBUFFERED": "1"}


def newest_run_dir(root: Path) -> Path:
    return Path(max(glob.glob(f"{root}/ws/artifacts/Trainer_transformer/model_run/*"), key=lambda p: int(Path(p).name)))


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "training_metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 60 steps in one process, then with two workers (ExampleGen to Transform cached)."""
    root = tmp_path_factory.mktemp("multi_worker")
    scratch = root / "tmp"
    scratch.mkdir()
    results = {}
    for name, extra in (("one", []), ("two", ["--trainer-workers", "2"])):
        results[name] = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", *fixed_steps(60), *extra],
                                       cwd=root, env=environment(scratch), capture_output=True, text=True, timeout=1200)
        assert results[name].returncode == 0, results[name].stdout + results[name].stderr
        results[f"{name}_dir"] = newest_run_dir(root)
    return root, scratch, results


def test_two_workers_train_as_one_process_does(runs):
    _, _, results = runs
    one, two = metrics_of(results["one_dir"]), metrics_of(results["two_dir"])
    assert (one["workers"], two["workers"]) == (1, 2) and two["replicas"] == 2 and two["shard"] == "data"
    assert one["global_batch"] == two["global_batch"] and one["steps"] == two["steps"] == 60
    assert one["curve"]["step"] == two["curve"]["step"]
    assert abs(one["curve"]["eval_loss"][-1] - two["curve"]["eval_loss"][-1]) < 0.05, (one["curve"], two["curve"])
    assert one["curve"]["eval_loss"][-1] < one["curve"]["eval_loss"][0]  # it learned: the two agree on something
    out = results["two"].stdout
    assert re.search(r"trained by 2 workers \(2 replicas, global batch \d+, sharded by data\)", out), out
    assert "serving check passed" in out and "pushed to" in out
    # the chief's progress reaches the run's terminal, its loss the epoch's as one process logs it
    last = re.search(r"Trainer_transformer step 60/60 \(100%\): loss ([\d.]+)", out)
    assert last and abs(float(last.group(1)) - two["curve"]["loss"][-1]) < 0.01, (last, two["curve"])


def test_only_the_chiefs_files_are_kept(runs):
    root, scratch, results = runs
    run_dir = results["two_dir"]
    cluster = json.loads((run_dir / "cluster.json").read_text())
    assert cluster["workers"] == 2 and [s["ended"] for s in cluster["starts"]] == ["every worker finished"]
    assert set(cluster["starts"][0]["tasks"]) == {"chief-0", "worker-0"}
    assert (run_dir / "workers" / "worker-0.log").stat().st_size > 0
    assert not (run_dir / "backup").exists()  # the backup outlives a training only while it runs
    assert not glob.glob(f"{scratch}/textflow-worker-*")  # the worker's export and metrics were removed
    model = glob.glob(f"{root}/ws/artifacts/Trainer_transformer/model/{run_dir.name}/Format-Serving/saved_model.pb")
    assert model, "the chief wrote the model"
    pushed = sorted(glob.glob(f"{root}/serving/textflow-transformer/*"))
    assert len(pushed) == 2  # one per run


def test_a_killed_worker_resumes_with_the_others_from_the_last_backup(runs):
    root, scratch, _ = runs
    steps = 200
    # precision auto: workers time no candidates, and train as the chief chose (float32, or a cached trial's choice)
    run = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", *fixed_steps(steps, precision_set=False),
                            "--trainer-workers", "2"],
                           cwd=root, env=environment(scratch), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, killed_at = [], None
    deadline = time.monotonic() + 900
    for line in run.stdout:
        lines.append(line)
        reached = re.search(rf"Trainer_transformer step (\d+)/{steps}", line)
        if killed_at is None and reached and int(reached.group(1)) >= steps // 2:
            cluster = json.loads((newest_run_dir(root) / "cluster.json").read_text())
            os.kill(cluster["starts"][-1]["tasks"]["worker-0"], signal.SIGKILL)
            killed_at = int(reached.group(1))
        assert time.monotonic() < deadline, "".join(lines)
    assert run.wait() == 0, "".join(lines)
    out = "".join(lines)
    assert killed_at is not None, out
    assert "worker-0 was ended by SIGKILL; starting all 2 workers again (1 of 2), from the last backup" in out
    metrics = metrics_of(newest_run_dir(root))
    assert 0 < metrics["resumed_at_step"] < steps and metrics["steps"] == steps, (killed_at, metrics)
    # the measurements before the resume were kept beside the backup: the curve has every one
    interval = metrics["curve"]["step"][0]
    assert metrics["curve"]["step"] == list(range(interval, steps + 1, interval)), metrics["curve"]
    assert metrics["best_step"] in metrics["curve"]["step"]
    assert f"resumed from the backup at step {metrics['resumed_at_step']}" in out
    starts = json.loads((newest_run_dir(root) / "cluster.json").read_text())["starts"]
    assert [s["ended"] for s in starts] == ["worker-0 was ended by SIGKILL", "every worker finished"]
    assert "serving check passed" in out and "pushed to" in out
    assert "acceleration: timing" not in out and re.search(r"no trial with 2 workers|cached trial", out), out
