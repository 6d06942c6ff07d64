"""tools/stylize_batch.py on Beam's local runner, end to end, as a user runs it.

Needs the extra (pip install -e ".[beam,test]") in its own environment: the main suite does not
collect this folder (setup.cfg's norecursedirs); `.ci/run` runs it as `python -m pytest tests/beam`.
The runner is FnApiRunner, the Python engine of Beam's DirectRunner: the DirectRunner itself first
tries to download the Go "Prism" runner from GitHub, which a test must not depend on.

One tiny export (32 px, 2 Adam steps, seeded random VGG19) serves every test; 6 photos (4 good,
one broken, one too small) × 2 styles make 12 pairs: 8 pictures and 4 error records.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "stylize_batch.py")
GOOD = ("p0", "p1", "p2", "p3")
STYLES = ("s0", "s1")
MADE = sorted(f"{c}__{s}" for c in GOOD for s in STYLES)
FAILED = sorted(f"{c}__{s}" for c in ("broken", "tiny") for s in STYLES)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """The export's base folder (the tool picks its version 1)."""
    from tf_style.config import Config
    from tf_style.export import export_savedmodel

    base = str(tmp_path_factory.mktemp("models") / "tf_style")
    config = Config(image_size=32, num_steps=2, seed=7, weights="random", optimizer="adam")
    export_savedmodel(config, base)
    return base


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    content, style = root / "photos", root / "styles"
    content.mkdir()
    style.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in zip(GOOD, [(24, 32), (40, 30), (48, 48), (20, 36)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(content / f"{name}.png")
    (content / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all" * 10)
    # 3x40 -> 2x32 at the export's size: too small for conv5_1
    Image.fromarray(rng.integers(0, 256, (3, 40, 3), dtype=np.uint8)).save(content / "tiny.png")
    for name in STYLES:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(style / f"{name}.jpg", quality=95)
    return {"content": str(content), "style": str(style)}


def command(model: str, folders: dict[str, str], output: str, *extra: str) -> list[str]:
    return [sys.executable, TOOL, f"--model_dir={model}", f"--content={folders['content']}",
            f"--style={folders['style']}", f"--output_dir={output}", "--runner=FnApiRunner", *extra]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, env=env(), timeout=300)


def files(folder: str) -> dict[str, bytes]:
    """Every file under `folder` but the last run's summary, by relative path."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(dirpath, n)
            if os.path.relpath(path, folder) != "summary.json":
                out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


@pytest.fixture(scope="module")
def reference(model, folders, tmp_path_factory) -> dict:
    """An uninterrupted job, four pairs to a batch."""
    output = str(tmp_path_factory.mktemp("reference") / "out")
    proc = run_tool(*command(model, folders, output, "--batch_size=4"))
    return {"proc": proc, "output": output}


def test_a_folder_gives_the_right_pictures_and_error_records(reference):
    proc, output = reference["proc"], reference["output"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "12 pairs: 8 made, 0 skipped (made before), 4 failed" in proc.stdout
    assert sorted(n for n in os.listdir(output) if n.endswith(".png")) == [f"{n}.png" for n in MADE]
    for name in MADE:
        with Image.open(os.path.join(output, f"{name}.png")) as img:
            assert img.format == "PNG" and max(img.size) == 32 and img.mode == "RGB"
            record = json.loads(img.info["tf_style"])  # the provenance chunk, as a single run's picture has
        content, style = name.split("__")
        assert record["inputs"] == {"content": content, "style": style} and record["finished"]
        done = json.load(open(os.path.join(output, "records", f"{name}.json")))
        assert done["status"] == "done" and done["output"] == f"{name}.png"
        assert set(done["losses"]) >= {"total", "content", "style"} and np.isfinite(done["losses"]["total"])
    assert sorted(os.listdir(os.path.join(output, "records"))) == sorted(f"{n}.json" for n in MADE + FAILED)
    for name in FAILED:
        failed = json.load(open(os.path.join(output, "records", f"{name}.json")))
        assert failed["status"] == "failed" and failed["content"].endswith(name.split("__")[0] + (".jpg" if "broken" in name else ".png"))
        expected = "cannot read the size of the image" if name.startswith("broken") else "too small for the deepest layer"
        assert failed["error"].startswith("content: ") and expected in failed["error"], failed["error"]
    summary = json.load(open(os.path.join(output, "summary.json")))
    assert (summary["done"], summary["skipped"], summary["failed"]) == (8, 0, 4)
    assert sorted(summary["failures"]) == FAILED


def test_each_picture_is_the_models_answer_for_its_own_pair(reference, model, folders):
    """The pixels and the loss of every picture are what the export answers for that pair alone (a batch's
    answers equal the single requests', tests/test_serving.py): a job that mixed up its pairs, or wrote
    anything else, fails."""
    import tensorflow as tf

    serve = tf.saved_model.load(os.path.join(model, "1")).signatures["serving_default"]
    output = reference["output"]
    answers = set()
    for name in MADE:
        content, style = name.split("__")
        with open(os.path.join(folders["content"], f"{content}.png"), "rb") as f, \
                open(os.path.join(folders["style"], f"{style}.jpg"), "rb") as g:
            out = serve(content_bytes=tf.constant([f.read()]), style_bytes=tf.constant([g.read()]))
        expected = np.asarray(Image.open(io.BytesIO(out["image_bytes"].numpy()[0])))
        with Image.open(os.path.join(output, f"{name}.png")) as img:
            np.testing.assert_array_equal(np.asarray(img), expected, err_msg=name)
        done = json.load(open(os.path.join(output, "records", f"{name}.json")))
        assert done["losses"]["total"] == float(out["loss_total"].numpy()[0]), name
        answers.add(expected.tobytes())
    assert len(answers) == len(MADE)  # eight different pictures: one written for another pair could not pass


def test_a_killed_worker_and_a_rerun_write_every_output_exactly_once(reference, model, folders, tmp_path):
    """SIGKILL the job (its whole process group) once its third picture is there; a rerun finishes
    it without rewriting what was there, and the folder equals the uninterrupted job's, byte for byte."""
    output = str(tmp_path / "out")
    job = subprocess.Popen(command(model, folders, output, "--batch_size=1"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env(), start_new_session=True)
    deadline = time.monotonic() + 240
    def pictures() -> list[str]:  # finished ones: not a temporary ".tmp-*.png" being written
        names = os.listdir(output) if os.path.isdir(output) else []
        return sorted(n for n in names if n.endswith(".png") and not n.startswith("."))

    while len(pictures()) < 3 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    log = job.communicate()[0].decode(errors="replace")
    assert job.returncode == -signal.SIGKILL, f"the job ended before it was killed:\n{log[-3000:]}"
    there = pictures()
    assert 3 <= len(there) < len(MADE), there
    before = {p: os.stat(os.path.join(output, p)) for p in there}

    proc = run_tool(*command(model, folders, output, "--batch_size=1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.load(open(os.path.join(output, "summary.json")))
    assert (summary["done"], summary["skipped"], summary["failed"]) == (len(MADE) - len(there), len(there), 4)
    for p, stat in before.items():  # written once: the rerun did not touch them
        now = os.stat(os.path.join(output, p))
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), p
    assert files(output) == files(reference["output"])  # same names (no temporary leftovers), same bytes


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_ends_the_job_in_one_line_and_a_rerun_finishes_it(reference, model, folders, tmp_path, signum):
    output = str(tmp_path / "out")
    # SIGINT's default action, as in a terminal (a shell's background job would inherit "ignored").
    job = subprocess.Popen(command(model, folders, output, "--batch_size=1"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env(), start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while job.poll() is None and time.monotonic() < deadline and (
            not os.path.isdir(output) or sum(n.endswith(".png") and not n.startswith(".") for n in os.listdir(output)) < 2):
        time.sleep(0.01)
    job.send_signal(signum)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 128 + signum, err.decode(errors="replace")[-3000:]
    assert err.decode().strip().splitlines()[-1] == (
        "stylize_batch.py: interrupted; the pictures made so far are kept: run the same command again to make the rest")
    assert "Traceback" not in err.decode()  # Beam logs the worker's KeyboardInterrupt with one: dropped
    proc = run_tool(*command(model, folders, output, "--batch_size=1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert files(output) == files(reference["output"])


def test_a_rerun_with_another_pairing_is_refused_in_one_line(reference, model, folders):
    proc = run_tool(*command(model, folders, reference["output"], "--pairs=cycle"))
    assert proc.returncode == 2
    # Only the tool's line: Beam's import logs about missing Google Cloud clients are kept out.
    assert proc.stderr == (f"stylize_batch.py: error: --output_dir: {reference['output']} holds a job made with another "
                           "pairing (pairs: cross); use another folder\n")


def test_an_option_neither_the_tool_nor_beam_knows_is_refused():
    from tf_style.beam_pipeline import pipeline_options
    from tf_style.errors import InputError

    assert pipeline_options(["--runner=FnApiRunner", "--direct_num_workers", "2"]).get_all_options()["direct_num_workers"] == 2
    with pytest.raises(InputError, match="unknown option.*--runer=FnApiRunner"):
        pipeline_options(["--runer=FnApiRunner"])
