"""The Beam-free half of batch stylisation (tf_style.batch_job, tf_style.pair_results, the tool's
edge): pairing, naming, the job record, skip-or-make, bad pairs isolated, atomic writes. The
pipeline itself runs in tests/beam (its own environment, with the extra tf_style[beam])."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tf_style import batch_job, pair_results
from tf_style.batch_job import JobSettings, Pair
from tf_style.config import Config
from tf_style.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "stylize_batch.py")
CONFIG = Config(image_size=32, num_steps=2, weights="random")
PAIR = Pair("cat__wave", "/in/cat.jpg", "/art/wave.png")


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def settings(tmp_path, **kw) -> JobSettings:
    base = dict(model_dir="m", contents=("a.jpg",), styles=("s.jpg",), output_dir=str(tmp_path / "out"))
    return JobSettings(**{**base, **kw})


def test_cross_pairs_every_photo_with_every_style_and_cycle_gives_each_photo_one():
    cross = batch_job.make_pairs(["/p/a.jpg", "/p/b.png"], ["/s/x.jpg", "/s/y.jpg"], "cross")
    assert [p.name for p in cross] == ["a__x", "a__y", "b__x", "b__y"]
    cycle = batch_job.make_pairs(["/p/a.jpg", "/p/b.png", "/p/c.png"], ["/s/x.jpg", "/s/y.jpg"], "cycle")
    assert [(p.content, p.style) for p in cycle] == [("/p/a.jpg", "/s/x.jpg"), ("/p/b.png", "/s/y.jpg"),
                                                    ("/p/c.png", "/s/x.jpg")]
    with pytest.raises(InputError, match=r"^content: /p/a.jpg and /q/a.png have the same name"):
        batch_job.make_pairs(["/p/a.jpg", "/q/a.png"], ["/s/x.jpg"], "cross")


def test_job_settings_refuse_what_cannot_run(tmp_path):
    with pytest.raises(InputError, match="^pairs must be one of cross, cycle; got 'zip'"):
        settings(tmp_path, pairs="zip")
    for bad in (0, True, 2.0):
        with pytest.raises(InputError, match="^batch_size must be an integer >= 1"):
            settings(tmp_path, batch_size=bad)
    with pytest.raises(InputError, match="^style: no images"):
        settings(tmp_path, styles=())
    s = settings(tmp_path)
    assert s.output(PAIR) == str(tmp_path / "out" / "cat__wave.png")
    assert s.record(PAIR) == str(tmp_path / "out" / "records" / "cat__wave.json")
    assert batch_job.join("gs://bucket/out", "x.png") == "gs://bucket/out/x.png"


def test_images_are_listed_from_a_folder_or_a_glob(tmp_path):
    for name in ("b.JPG", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()  # a folder, not a photo
    (tmp_path / "sub.png" / "c.png").write_bytes(b"x")
    assert batch_job.list_images(str(tmp_path), "content") == [str(tmp_path / "a.png"), str(tmp_path / "b.JPG")]
    assert batch_job.list_images(str(tmp_path / "*.png"), "style") == [str(tmp_path / "a.png")]
    with pytest.raises(InputError, match="^style: no images in .*nothing"):
        batch_job.list_images(str(tmp_path / "nothing*"), "style")


@pytest.mark.parametrize("where", ["local", "url"])
def test_the_model_dir_is_a_version_or_the_highest_version_of_a_base(tmp_path, where):
    """TensorFlow Serving's rule, the C++ check's too (export.served_folder): the highest integer
    folder, which must be complete; locally and on a URL filesystem (ram://, standing in for gs://)."""
    import tensorflow as tf

    base = str(tmp_path) if where == "local" else f"ram://tf_style_model_dir/{tmp_path.name}"
    for version in ("1", "2", "10", "99x"):
        tf.io.gfile.makedirs(f"{base}/{version}")
        if version != "99x":
            tf.io.gfile.GFile(f"{base}/{version}/saved_model.pb", "wb").write(b"")
    assert batch_job.resolve_model_dir(base) == f"{base}/10"
    assert batch_job.resolve_model_dir(f"{base}/2") == f"{base}/2"
    assert batch_job.resolve_model_dir(f"{base}/2/") == f"{base}/2"
    tf.io.gfile.makedirs(f"{base}/11")  # an export still being copied: the server would fail on it, not serve 10
    with pytest.raises(InputError) as e:
        batch_job.resolve_model_dir(base)
    assert str(e.value) == (f"model_dir: the highest version folder {base}/11 (the one TensorFlow Serving would "
                            "serve) has no saved_model.pb; wait until it is complete, remove it, or name a version folder")
    with pytest.raises(InputError) as e:
        batch_job.resolve_model_dir(f"{base}/99x")
    assert str(e.value) == ("model_dir: expected a SavedModel folder (with saved_model.pb) or a base folder of integer "
                            f"version folders; got {base}/99x, which has neither")
    with pytest.raises(InputError) as e:
        batch_job.resolve_model_dir(f"{base}/12")
    assert str(e.value) == f"model_dir: no such folder: {base}/12"


def test_a_model_dir_tensorflow_cannot_read_says_so():
    with pytest.raises(InputError, match=r"^model_dir: cannot read s3://bucket/model \(.*\); s3:// and hdfs:// need a "
                       "local copy of the model$"):
        batch_job.resolve_model_dir("s3://bucket/model")


def test_the_output_folder_is_claimed_once_and_kept_from_other_jobs(tmp_path):
    s = settings(tmp_path)
    record = batch_job.job_record(s, {"config": {"num_steps": 2}})
    batch_job.claim_output_dir(s, record)
    (tmp_path / "out" / "records" / ".tmp-abc.json").write_bytes(b"{")  # a killed worker's leftover
    batch_job.claim_output_dir(s, record)  # the same job again: fine, and the leftover goes
    assert sorted(os.listdir(tmp_path / "out" / "records")) == []
    with pytest.raises(InputError, match="^output_dir: .* holds a job made with another model"):
        batch_job.claim_output_dir(s, batch_job.job_record(s, {"config": {"num_steps": 3}}))
    other = settings(tmp_path, pairs="cycle")
    with pytest.raises(InputError, match="another pairing"):
        batch_job.claim_output_dir(other, batch_job.job_record(other, {"config": {"num_steps": 2}}))
    users = settings(tmp_path, output_dir=str(tmp_path / "mine"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.png").write_bytes(b"a user's picture")
    with pytest.raises(InputError, match="has files but no tf_style_job.json; they are kept"):
        batch_job.claim_output_dir(users, record)
    assert os.listdir(tmp_path / "mine") == ["holiday.png"]
    # A file where the folder should be, or above it: one line, the file kept.
    for where in ("holiday.png", "holiday.png/pictures"):
        in_file = settings(tmp_path, output_dir=str(tmp_path / "mine" / where))
        with pytest.raises(InputError, match=r"^output_dir: .*mine/holiday\.png(/pictures is under .*holiday\.png, which)? "
                                             r"is a file; expected a folder$"):
            batch_job.claim_output_dir(in_file, record)
    assert (tmp_path / "mine" / "holiday.png").read_bytes() == b"a user's picture"
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(InputError, match=r"^output_dir: .*dangling is a link to nothing; expected a folder$"):
        batch_job.claim_output_dir(settings(tmp_path, output_dir=str(tmp_path / "dangling")), record)


def test_a_picture_carries_its_provenance_and_the_export_s_pixels(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    text = pair_results.provenance_text(CONFIG, PAIR)
    data = pair_results.with_provenance(png(pixels), text)
    path = tmp_path / "x.png"
    batch_job.write_bytes(str(path), data)
    assert os.listdir(tmp_path) == ["x.png"]  # written under a temporary name, renamed into place
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img), pixels)
    from tf_style import provenance

    assert provenance.read(path)["inputs"] == {"content": "cat", "style": "wave"}


def test_a_pair_is_made_skipped_or_kept_from_what_is_there():
    ours = pair_results.with_provenance(png(np.zeros((4, 4, 3), np.uint8)), pair_results.provenance_text(CONFIG, PAIR))
    assert pair_results.state(CONFIG, PAIR, None, True) == "new"
    assert pair_results.state(CONFIG, PAIR, ours, True) == "skip"
    assert pair_results.state(CONFIG, PAIR, ours, False) == "new"  # --noskip_existing: made again
    foreign = pair_results.state(CONFIG, PAIR, png(np.zeros((4, 4, 3), np.uint8)), True)
    assert isinstance(foreign, InputError) and "not made by tf_style; it is kept" in str(foreign)
    other = pair_results.state(CONFIG.replace(num_steps=3), PAIR, ours, True)
    assert isinstance(other, InputError) and "other settings or images" in str(other)
    assert isinstance(pair_results.state(CONFIG, PAIR, b"not an image", True), InputError)


class BadInput(Exception):
    pass


def fake_model(contents, styles):
    """serving_default's contract: one bad image fails the whole batch."""
    if any(c.startswith(b"bad") for c in contents):
        raise BadInput("assertion failed: [content_bytes[0]: cannot read the size of the image]\n\t [[{{node x}}]]")
    return {"image_bytes": np.array([b"\x89PNG" + c for c in contents], dtype=object),
            "loss_total": np.array([float(len(c)) for c in contents], np.float32)}


def test_a_bad_pair_fails_alone_and_the_batch_is_answered():
    splits = []
    answers = pair_results.stylize_isolated(fake_model, [(b"a", b"s"), (b"bad", b"s"), (b"cc", b"s")], (BadInput,),
                                            lambda: splits.append(1))
    assert answers == [{"png": b"\x89PNGa", "losses": {"total": 1.0}},
                       {"error": "content: cannot read the size of the image"},
                       {"png": b"\x89PNGcc", "losses": {"total": 2.0}}]
    assert splits == [1]
    with pytest.raises(ZeroDivisionError):  # anything else is not the input's fault: the runner retries
        pair_results.stylize_isolated(lambda c, s: 1 / 0, [(b"a", b"s")], (BadInput,))


def test_records_and_the_summary():
    done = json.loads(pair_results.record(PAIR, "done", losses={"total": 1.5}))
    assert done == {"content": "/in/cat.jpg", "style": "/art/wave.png", "status": "done", "output": "cat__wave.png",
                    "losses": {"total": 1.5}}
    failed = json.loads(pair_results.record(PAIR, "failed", error="content: broken"))
    assert failed["error"] == "content: broken" and "output" not in failed
    parts = [pair_results.add_to_summary(pair_results.empty_summary(), o)
             for o in [("a", "done", None), ("b", "failed", "bad"), ("c", "skipped", None)]]
    summary = pair_results.merge_summaries(parts)
    assert (summary["done"], summary["skipped"], summary["failed"], summary["failures"]) == (1, 1, 1, {"b": "bad"})
    assert pair_results.summary_lines(summary, "out")[:2] == [
        "3 pairs: 1 made, 1 skipped (made before), 1 failed", "  failed: b: bad"]


def test_the_tool_lists_its_flags_and_refuses_a_missing_one_in_one_line():
    run = lambda *a: subprocess.run([sys.executable, TOOL, *a], capture_output=True, text=True, timeout=120,
                                    env={**os.environ, "PYTHONPATH": ROOT})
    help_ = run("--help")
    listed = set(re.findall(r"^  --(?:\[no\])?(\w+):", help_.stdout, re.M))
    assert help_.returncode == 0 and listed == {"model_dir", "content", "style", "pairs", "output_dir", "batch_size",
                                                "skip_existing"}, listed
    missing = run("--content=x", "--style=y", "--output_dir=z")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "stylize_batch.py: error: --model_dir is required (the export)"


def test_files_appear_whole_through_a_rename(tmp_path, monkeypatch):
    """Write-then-rename, locally and on a URL filesystem (TensorFlow's ram://, standing in for gs://):
    the final name appears only by a rename of a whole temporary file beside it."""
    import tensorflow as tf

    renames = []
    real_replace, real_rename = os.replace, tf.io.gfile.rename

    def replace(src, dst):
        renames.append((os.path.basename(src).startswith(".tmp-"), open(src, "rb").read(), os.path.exists(dst)))
        real_replace(src, dst)

    def rename(src, dst, overwrite=False):
        renames.append((src.rsplit("/", 1)[1].startswith(".tmp-"), tf.io.gfile.GFile(src, "rb").read(),
                        tf.io.gfile.exists(dst)))
        real_rename(src, dst, overwrite)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(tf.io.gfile, "rename", rename)
    batch_job.write_bytes(str(tmp_path / "x.png"), b"picture")
    url = f"ram://tf_style_test/{tmp_path.name}"  # ram:// lives as long as the process: one folder per test
    batch_job.write_bytes(f"{url}/x.png", b"picture")
    assert renames == [(True, b"picture", False)] * 2
    assert os.listdir(tmp_path) == ["x.png"] and tf.io.gfile.listdir(url) == ["x.png"]
    s = settings(tmp_path, output_dir=url)  # a URL folder is claimed the same way, '/'-joined
    with pytest.raises(InputError, match="has files but no tf_style_job.json"):  # x.png is not a job's
        batch_job.claim_output_dir(s, batch_job.job_record(s, {"config": {}}))
    s = settings(tmp_path, output_dir=url + "/job")
    batch_job.claim_output_dir(s, batch_job.job_record(s, {"config": {}}))
    assert sorted(tf.io.gfile.listdir(url + "/job")) == ["records", "tf_style_job.json"]
    assert s.record(PAIR) == f"{url}/job/records/cat__wave.json"


def test_the_tool_drops_the_tracebacks_of_an_interrupt_but_no_others():
    # SIGTERM's handler raises KeyboardInterrupt; raised while TensorFlow's C++ turned its own NotFoundError into
    # Python's, pybind11 made it a RuntimeError, and Beam logged that with its traceback (a CI run, 2026-11-29).
    script = (
        "import importlib.util, logging, sys\n"
        f"spec = importlib.util.spec_from_file_location('tool', {TOOL!r})\n"
        "tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)\n"
        "keep = tool.NoInterruptTracebacks().filter\n"
        "def record(error):\n"
        "    return logging.LogRecord('beam', logging.ERROR, 'x', 1, 'failed', None, (type(error), error, None))\n"
        "print([keep(record(e)) for e in (KeyboardInterrupt(), RuntimeError('pybind11::error_already_set: MISMATCH of "
        "original and normalized active exception types: ORIGINAL NotFoundError REPLACED BY KeyboardInterrupt: '), "
        "RuntimeError('CUDA error'), ValueError('bad'))],\n"
        "      keep(logging.LogRecord('beam', logging.INFO, 'x', 1, 'fine', None, None)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[False, False, True, True] True\n"
