"""The live training line: a Trainer's progress records drawn on a terminal and in plain logs."""

import fcntl
import io
import logging
import os
import re
import struct
import termios
import threading

import numpy as np
import tensorflow as tf
import tf_keras

from models.runtime.progress import PROGRESS_LOGGER, log_progress, note
from models.runtime.training import ProgressLog
from pipeline.console import ProgressPrinter


def fake_trainer(printer: ProgressPrinter, steps: int = 200) -> None:
    """A component of known length: running, `steps` progress records, finished."""
    root = logging.getLogger()
    root.addHandler(printer)
    try:
        logging.getLogger("fake").warning("Component %s is running.", "Trainer_rnn")
        for step in range(1, steps + 1):
            log_progress(step, steps, 2.0 - step / steps, 5000.0)
        note("rnn: export 3 s")
        logging.getLogger("fake").warning("Component %s is finished.", "Trainer_rnn")
    finally:
        root.removeHandler(printer)


def test_without_a_terminal_a_plain_line_every_tenth():
    console = io.StringIO()
    fake_trainer(ProgressPrinter(console, total=3))
    lines = console.getvalue().splitlines()
    progress = [line for line in lines if "step" in line]
    assert [re.search(r"\((\d+)%\)", line).group(1) for line in progress] == [str(p) for p in range(10, 101, 10)]
    assert progress[0].startswith("  Trainer_rnn step 20/200 (10%): loss 1.900, 5,000 tokens/s, about ")
    assert lines[0] == "[1/3] Trainer_rnn started" and lines[-1].startswith("[1/3] Trainer_rnn finished in ")
    assert lines[-2] == "  Trainer_rnn: rnn: export 3 s"  # a note, under its component


def test_on_a_terminal_one_line_updated_in_place():
    main, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    drawn = []
    reader = threading.Thread(target=lambda: drain(main, drawn), daemon=True)  # a pty holds a few KB only
    reader.start()
    with os.fdopen(follower, "w") as console:
        fake_trainer(ProgressPrinter(console, total=3))
        console.write("END\n")
    reader.join(timeout=30)
    os.close(main)
    text = b"".join(drawn).decode("utf-8", "replace")
    assert "END" in text
    assert "\r  Trainer_rnn:" in text and "200/200" in text and "loss 1.000, 5,000 tokens/s" in text
    assert "(10%)" not in text  # no plain lines on a terminal


def drain(fd: int, into: list) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other side closed
            return
        if not chunk:
            return
        into.append(chunk)
        if b"END" in b"".join(into[-2:]):
            return


def test_keras_training_logs_its_steps():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.args)

    handler = Keep()
    logging.getLogger(PROGRESS_LOGGER).addHandler(handler)
    try:
        tf_keras.utils.set_random_seed(0)
        model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(3,))])
        model.compile("sgd", "mse")
        data = tf.data.Dataset.from_tensor_slices((np.ones((64, 3)), np.ones((64, 1)))).batch(4)
        model.fit(data, epochs=2, verbose=0, callbacks=[ProgressLog(32, tokens_per_step=12.0)])
    finally:
        logging.getLogger(PROGRESS_LOGGER).removeHandler(handler)
    assert [r[0] for r in records] == list(range(1, 33))  # every step: 32 // 100 rounds up to 1
    assert all(total == 32 and rate > 0 for _, total, _, rate in records)
