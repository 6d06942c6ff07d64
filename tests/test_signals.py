"""Real signals sent to a real `tf-style`: SIGINT, SIGTERM, and SIGKILL followed by --resume.

Each interrupted run, resumed with the command it printed (or, after SIGKILL, with --resume),
must end with the picture of the same run left alone.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from test_cli import offline_env

from tf_style import cli_flags
from tf_style.errors import Interrupted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two scales (32 px for 40 steps, then 64 px for 20) with L-BFGS: a checkpoint has to carry the schedule and the curvature pairs.
ARGS = ["--weights=random", "--image_size=64", "--scales=2", "--coarsest_size=32", "--num_steps=20",
        "--print_every=1", "--checkpoint_every=5"]


def command(content_path, style_path, output):
    return [f"--content={content_path}", f"--style={style_path}", f"--output={output}", *ARGS]


def start(args, tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tf_style", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=offline_env(tmp_path), cwd=tmp_path)


def wait_for_step(proc: subprocess.Popen, step: int) -> None:
    """Reads the progress lines (one per step: stdout is a pipe) until step `step` is done."""
    for line in proc.stdout:
        if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= step:
            return
    raise AssertionError(f"the run ended before step {step}: {proc.wait()} {proc.stderr.read()}")


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, content_path, style_path):
    """The picture of the run never interrupted."""
    tmp = tmp_path_factory.mktemp("whole")
    proc = subprocess.run([sys.executable, "-m", "tf_style", *command(content_path, style_path, tmp / "whole.png")],
                          capture_output=True, text=True, env=offline_env(tmp), cwd=tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(tmp / "whole.png.checkpoints")  # removed once complete
    return pixels(tmp / "whole.png")


def resume_with(printed: str, tmp_path) -> subprocess.CompletedProcess:
    """Runs the resume command a stopped run printed (its `tf-style` as `python -m tf_style`)."""
    words = shlex.split(printed)
    assert words[0] == "tf-style" and words[-1] == "--resume"
    return subprocess.run([sys.executable, "-m", "tf_style", *words[1:]], capture_output=True, text=True,
                          env=offline_env(tmp_path), cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("signum, status, stop_at", [(signal.SIGINT, 130, 10), (signal.SIGTERM, 143, 48)],
                         ids=["SIGINT-coarse", "SIGTERM-fine"])
def test_a_signal_stops_after_the_step_writes_image_and_checkpoint_and_resume_ends_the_same(
    tmp_path, content_path, style_path, reference, signum, status, stop_at
):
    output = tmp_path / "out.png"
    args = command(content_path, style_path, output)
    if signum == signal.SIGTERM:  # an earlier picture at --output (replaced as asked) must survive the interruption
        output.write_bytes(b"an earlier picture")
        args.append("--overwrite")  # the resume command repeats it: the completed run may replace that file
    proc = start(args, tmp_path)
    wait_for_step(proc, stop_at)
    proc.send_signal(signum)
    if signum == signal.SIGINT:  # an impatient second Ctrl-C changes nothing: the image and checkpoint still come
        time.sleep(0.3)
        proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    if signum == signal.SIGINT:
        assert "tf-style: SIGINT: stopping after the current step\n" in stderr
        assert "tf-style: SIGINT: already stopping" in stderr or stderr.count("SIGINT") == 1  # merged if both came mid-step
    last = stderr.strip().splitlines()[-1]
    step = int(last.split("stopped after step ")[1].split(";")[0])
    assert step >= stop_at
    unfinished = tmp_path / "out.unfinished.png" if signum == signal.SIGTERM else output
    checkpoint = f"{output}.checkpoints/ckpt-{step}"
    assert last.startswith(f"tf-style: stopped after step {step}; the image so far was written to {unfinished}; "
                           f"checkpoint: {checkpoint}. To continue: tf-style "), last
    assert os.path.exists(checkpoint + ".index")
    assert pixels(unfinished).shape == reference.shape
    if signum == signal.SIGTERM:
        assert output.read_bytes() == b"an earlier picture"
    resumed = resume_with(last.split("To continue: ")[1], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at step {step}" in resumed.stdout
    assert np.abs(pixels(output) - reference).max() <= 1
    assert not os.path.exists(f"{output}.checkpoints")


def test_after_sigkill_resume_continues_from_the_last_checkpoint_and_ends_the_same(
    tmp_path, content_path, style_path, reference
):
    output = tmp_path / "out.png"
    args = command(content_path, style_path, output)
    proc = start(args, tmp_path)
    wait_for_step(proc, 13)  # checkpoints were written after steps 5 and 10
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not output.exists()  # nothing was written but checkpoints
    saved = sorted(f for f in os.listdir(f"{output}.checkpoints") if f.endswith(".index"))
    assert "ckpt-10.index" in saved
    resumed = subprocess.run([sys.executable, "-m", "tf_style", *args, "--resume"], capture_output=True, text=True,
                             env=offline_env(tmp_path), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    last_saved = max(int(f[len("ckpt-"):-len(".index")]) for f in saved)
    assert f"resumed at step {last_saved}" in resumed.stdout
    assert np.abs(pixels(output) - reference).max() <= 1


@pytest.mark.parametrize("error", [BrokenPipeError, ValueError])  # the reader gone; the stream closed
def test_a_signal_whose_notice_cannot_be_written_still_stops_after_the_step(error):
    # `tf-style ... 2>&1 | tee log` and Ctrl-C: tee dies too, and the handler's notice raised BrokenPipeError out of
    # whatever step the signal interrupted, the very thing the handler exists to prevent.
    from tf_style.stopping import StopSwitch, stop_on_signals

    class Gone:
        def write(self, text):
            raise error("the reader is gone")

        def flush(self):
            raise error("the reader is gone")

    switch = StopSwitch()
    with stop_on_signals(switch, "tf-style", stream=Gone()):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # the second notice, "already stopping", too
        time.sleep(0.1)  # Python runs the handler between bytecodes, in this thread
    assert switch.requested and switch.signum == signal.SIGINT


@pytest.mark.parametrize("raised, status, line", [
    (KeyboardInterrupt(), 130, "tool: interrupted"),
    (Interrupted(saved_to="out/colour/1.png", signum=signal.SIGTERM, step=3), 143,
     "tool: interrupted; the image so far was written to out/colour/1.png"),
])
def test_ctrl_c_a_tool_did_not_handle_is_one_line_and_the_signal_s_status(capsys, raised, status, line):
    def body(argv):
        raise raised

    with pytest.raises(SystemExit) as exited:
        cli_flags.reporting_errors("tool", body, [])
    assert (exited.value.code, capsys.readouterr().err) == (status, f"\n{line}\n")


def tensorflow_mapped(pid: int) -> bool:
    """Whether TensorFlow's shared library is loaded in process `pid` (Linux's /proc)."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return "libtensorflow_framework" in maps.read()
    except OSError:
        return False


@pytest.mark.parametrize("tool, args", [
    ("export_savedmodel.py", ["--export_dir={tmp}/m", "--weights=random", "--image_size=32"]),
    ("cc_loader_check.py", ["--saved_model_dir={tmp}"]),
    ("benchmark.py", ["--what=iterations", "--image_size=32", "--steps=3"]),
])
def test_ctrl_c_while_a_tool_loads_tensorflow_is_one_line(tmp_path, tool, args):
    args = [a.format(tmp=tmp_path) for a in args]
    # SIGINT's default action, as in a terminal: a shell's background job (CI's, say) would inherit "ignored".
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", tool), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=offline_env(tmp_path), cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # The moment TensorFlow's own library is mapped into the process, its import (a second or more of Python
    # after that) has begun: the signal lands there, on a fast machine as on a slow one.
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not tensorflow_mapped(proc.pid):
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, err.strip().splitlines()[-1:]) == (130, [f"{tool}: interrupted"]), err
    assert "Traceback" not in err
