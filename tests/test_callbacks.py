"""The progress logger: lines in files and pipes, a bar on a terminal."""

import io

import keras

from cooperative_tf.callbacks import ProgressLogger


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _run(stream, steps=4, every=2):
    state = {"step": 0}
    logger = ProgressLogger(every, steps, lambda: state["step"],
                            stream=stream)
    logger.set_model(keras.Sequential())
    logger.on_train_begin()
    for step in range(1, steps + 1):
        state["step"] = step
        logger.on_train_batch_end(step, {"planner_loss": float(step)})
    return stream.getvalue()


def test_a_file_or_pipe_gets_plain_lines_with_the_eta():
    text = _run(io.StringIO())
    lines = text.splitlines()
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]
    assert all("ETA " in line for line in lines)
    assert "ETA 0m00s" in lines[-1]  # nothing left at the last step
    assert "\r" not in text and "[" not in text


def test_a_terminal_gets_a_bar_redrawn_in_place_between_lines():
    text = _run(_Terminal())
    # Steps 1 and 3 draw the bar; steps 2 and 4 clear it and print a line.
    assert text.count("\r[") == 2
    assert "step 1/4" in text and "step 3/4" in text
    assert text.count("\n") == 2
    assert text.rstrip().endswith("planner_loss=4")
