"""The export in TensorFlow Serving's own C++ loader (tf_style.cc_loader, tools/cc_loader_check.py).

A small C++ program built against the installed tensorflow wheel loads the export with
tensorflow::LoadSavedModel and answers each request with one Session::Run on the signature's
tensor names, as the model server does; its answers must equal the Python TF1 loader's bit for
bit. These tests need g++ (.ci/run installs it): without one they fail, saying what to install.
One tiny export (32 px, 1 step, one scale, seeded random VGG19) serves them all; the program is
built once per TensorFlow and compiler and cached (~/.cache/tf_style/cc; in the suite an empty temporary
cache, tests/conftest.py, so it is compiled and linked as on a first run).
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from absl.testing import flagsaver
from PIL import Image

from tf_style.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "cc_loader_check.py")
SIGNATURES = {"serving_default", "targets", "init_state", "step"}


def env() -> dict[str, str]:
    path = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, env=env(), timeout=600)


@pytest.fixture(scope="module")
def binary():
    from tf_style import cc_build

    try:
        return cc_build.build()
    except cc_build.CcError as e:
        pytest.fail(f"the C++ loader check cannot run on this machine: {e}")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    """A base folder with versions 1 and 2 (2 is the tiny export, 1 a leftover that cannot load)."""
    from tf_style import export

    folder = tmp_path_factory.mktemp("models") / "tf_style"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "saved_model.pb").write_bytes(b"an older, broken version")
    config = Config(image_size=32, num_steps=1, scales=1, seed=7, weights="random", optimizer="adam")
    export.export_savedmodel(config, str(folder), version=2)
    return str(folder)


@pytest.fixture(scope="module")
def tool_run(base, binary):
    """The tool on the base folder, started at once so that it runs beside the library's check
    (loading and the first run of each signature are mostly one thread); its test reads it."""
    proc = subprocess.Popen([sys.executable, TOOL, f"--saved_model_dir={base}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def report(base, binary, tool_run):
    from tf_style import cc_loader

    return cc_loader.check(base)


def answers(report, signature: str, label: str):
    return next((py, cc) for r, py, cc in report.exchanges if (r.signature, r.label) == (signature, label))


def test_every_signature_answers_identically_in_the_cc_loader(report, base):
    from tf_style import cc_loader

    assert report.problems == [] and report.ok
    assert report.export_dir == os.path.join(base, "2") and "version 2, the highest integer folder" in report.chosen
    assert {s for s, _, _ in report.rows} == SIGNATURES
    assert [v for s, r, v in report.rows if r == "malformed image"] == ["INVALID_ARGUMENT in both"]
    assert all(v.endswith("outputs identical") for _, r, v in report.rows if r != "malformed image")
    assert cc_loader.summary(report).endswith("parity: 4 signatures, 6 requests, every answer identical bit for bit")


def test_the_cc_answers_are_the_pictures_and_tensors_expected(report):
    py, cc = answers(report, "serving_default", "2 pairs")
    pictures = [Image.open(io.BytesIO(data)) for data in cc.outputs["image_bytes"]]
    assert [(p.format, p.size, p.mode) for p in pictures] == [("PNG", (32, 21), "RGB"), ("PNG", (32, 28), "RGB")]
    assert list(cc.outputs["image_bytes"]) == list(py.outputs["image_bytes"])  # the very bytes
    assert cc.outputs["loss_total"].shape == (2,) and np.all(cc.outputs["loss_total"] > 0)
    py, cc = answers(report, "targets", "photo")
    assert cc.outputs["image"].shape == (1, 21, 32, 3) and cc.outputs["positions_conv1_1"].tolist() == [21 * 32]
    assert cc.outputs["image"].tobytes() == py.outputs["image"].tobytes()
    py, cc = answers(report, "step", "start, its state, targets")
    start = answers(report, "targets", "photo")[1].outputs["initial_image"]
    assert cc.outputs["image"].shape == start.shape and not np.array_equal(cc.outputs["image"], start)  # it moved
    assert int(cc.outputs["state_t"]) == 1 and cc.outputs["state_m"].tobytes() == py.outputs["state_m"].tobytes()


def test_a_malformed_image_is_invalid_argument_with_the_same_message(report):
    from tf_style import cc_compare

    py, cc = answers(report, "serving_default", "malformed image")
    assert cc.error[0] == py.error[0] == "INVALID_ARGUMENT"
    assert cc_compare.op_message(cc.error[1]) == cc_compare.op_message(py.error[1]) == (
        "assertion failed: [content_bytes[0] is not a JPEG, PNG, GIF, BMP or WebP image]")
    request = next(r for r, _, _ in report.exchanges if r.label == "malformed image")
    assert request.expected_error == "INVALID_ARGUMENT"
    assert cc_compare.compare(request, py, cc_compare.Answer(error=("INTERNAL", cc.error[1]))) == [
        "serving_default (malformed image): expected INVALID_ARGUMENT; got INTERNAL (C++)"
    ]
    assert cc_compare.compare(request, cc_compare.Answer(outputs={}), cc_compare.Answer(outputs={})) == [
        "serving_default (malformed image): expected INVALID_ARGUMENT; got an answer (Python)",
        "serving_default (malformed image): expected INVALID_ARGUMENT; got an answer (C++)",
    ]
    other = cc_compare.Answer(error=(cc.error[0], cc.error[1].replace("WebP", "TIFF")))
    assert cc_compare.compare(request, py, other) == [
        "serving_default (malformed image): expected INVALID_ARGUMENT: assertion failed: [content_bytes[0] is not a "
        "JPEG, PNG, GIF, BMP or WebP image] (Python); got INVALID_ARGUMENT: assertion failed: [content_bytes[0] is "
        "not a JPEG, PNG, GIF, BMP or TIFF image] (C++)"
    ]


def test_the_tool_checks_a_base_folder_and_exits_0(base, binary, tool_run):
    stdout, stderr = tool_run.communicate(timeout=600)
    assert tool_run.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == (
        f"checked {base}/2 (version 2, the highest integer folder in {base}, as TensorFlow Serving serves)"
    )
    assert lines[1].startswith(f"C++ loader: {binary.path} (cached; ")
    assert {line.split()[0] for line in lines[3:9]} == SIGNATURES
    assert lines[-1] == "parity: 4 signatures, 6 requests, every answer identical bit for bit"


def photo_png(flip: bool = False) -> np.ndarray:
    from tf_style import cc_loader, images

    pixels = images.to_uint8(images.resize_longest(images.load_image(cc_loader.IMAGES["photo"]), 32))
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, ::-1] if flip else pixels).save(buffer, format="PNG")
    return np.array([buffer.getvalue()], dtype=object)


def test_different_inputs_on_one_side_are_a_mismatch(report, binary):
    """The comparison is not vacuous: the C++ side fed a mirrored photo differs, value by value."""
    from tf_style import cc_compare, cc_loader

    request = cc_compare.Request("photo", "targets", {"image_bytes": photo_png()})
    loader = cc_loader.PythonLoader(report.export_dir)
    try:
        expected = loader.answer(request)
    finally:
        loader.close()
    mirrored = cc_compare.Request("photo", "targets", {"image_bytes": photo_png(flip=True)})
    got = cc_loader.run_cc(binary.path, report.export_dir, [mirrored]).answers[0]
    found = cc_compare.compare(request, expected, got)
    assert any(line.startswith("targets (photo): content_conv4_2: ") and "values differ, max difference" in line
               for line in found), found
    assert not any("positions_" in line for line in found)  # same size, so the same M_l


def test_one_ulp_one_byte_or_one_signature_apart_is_a_mismatch(report):
    from tf_style import cc_compare, cc_loader

    request, py, cc = next(x for x in report.exchanges if x[0].signature == "step")
    nudged = {k: v.copy() for k, v in cc.outputs.items()}
    nudged["loss_total"][0] = np.nextafter(nudged["loss_total"][0], np.float32(np.inf))
    gap = float(nudged["loss_total"][0]) - float(py.outputs["loss_total"][0])
    assert cc_compare.compare(request, py, cc_compare.Answer(outputs=nudged)) == [
        f"step (start, its state, targets): loss_total: 1 of 1 values differ, max difference {gap:.6g}"
    ]
    request, py, cc = next(x for x in report.exchanges if x[0].label == "2 pairs")
    png = cc.outputs["image_bytes"].copy()
    png[1] = png[1][:-1] + bytes([png[1][-1] ^ 1])
    assert cc_compare.compare(request, py, cc_compare.Answer(outputs={**cc.outputs, "image_bytes": png})) == [
        "serving_default (2 pairs): image_bytes: 1 of 2 strings differ (first at index 1)"
    ]
    loader = cc_loader.PythonLoader(report.export_dir)
    loader.close()
    fewer = {k: v for k, v in loader.signatures.items() if k != "step"}
    assert cc_compare.compare_signatures(loader.signatures, fewer) == [
        f"signatures: expected {sorted(loader.signatures)} (Python); got {sorted(fewer)} (C++)"
    ]


@pytest.mark.parametrize("layout, message", [
    ("empty", "--saved_model_dir: expected a SavedModel folder (with saved_model.pb) or a base folder of integer "
              "version folders; got {dir}, which has neither"),
    ("broken", "--saved_model_dir: {dir}/7 is not a SavedModel the TF1 loader can load (OSError: Cannot parse file "
               "b'{dir}/7/saved_model.pb': Error parsing message with type 'tensorflow.SavedModel': Wire format was "
               "corrupt.)"),
])
def test_not_a_savedmodel_is_one_line_and_exit_2(tmp_path, layout, message):
    if layout == "broken":
        (tmp_path / "7").mkdir()
        (tmp_path / "7" / "saved_model.pb").write_bytes(b"not a protocol buffer \xff\xff")
        (tmp_path / "notes").mkdir()  # not an integer: not a version
    proc = run_tool(f"--saved_model_dir={tmp_path}")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "cc_loader_check.py: error: " + message.format(dir=tmp_path) + "\n"


def test_served_folder_follows_tensorflow_serving(tmp_path):
    from tf_style import export
    from tf_style.errors import InputError

    with pytest.raises(InputError, match=f"^saved_model_dir: no such folder: {tmp_path}/nope$"):
        export.served_folder(str(tmp_path / "nope"))
    (tmp_path / "model.txt").write_text("")
    with pytest.raises(InputError) as info:
        export.served_folder(str(tmp_path / "model.txt"))
    assert str(info.value) == (f"saved_model_dir: {tmp_path}/model.txt is a file; expected a SavedModel folder or a base "
                               "folder of versions")
    (tmp_path / "model.txt").unlink()
    for name in ("3", "10", "9x"):
        (tmp_path / name).mkdir()
    with pytest.raises(InputError, match=rf"^saved_model_dir: the highest version folder {tmp_path}/10 \(the one"):
        export.served_folder(str(tmp_path))
    (tmp_path / "10" / "saved_model.pb").write_bytes(b"")
    assert export.served_folder(str(tmp_path / "10")) == (str(tmp_path / "10"), "")
    assert export.served_folder(str(tmp_path))[0] == str(tmp_path / "10")


def test_no_compiler_says_what_to_install(base):
    proc = run_tool(f"--saved_model_dir={base}", "--cxx=no-such-c++-compiler")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "cc_loader_check.py: error: the C++ loader check needs a C++ compiler; no 'no-such-c++-compiler' on PATH: "
        "install g++ (Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++) or set CXX to a C++17 compiler\n"
    )


def test_a_mismatch_is_printed_and_exits_1(monkeypatch, capsys, report):
    from tf_style import cc_loader

    spec = importlib.util.spec_from_file_location("cc_loader_check_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    broken = cc_loader.Report(report.export_dir, "", report.binary, report.rows[:1], ["step (x): image: differs"], [])
    monkeypatch.setattr(cc_loader, "check", lambda *a, **k: broken)
    with flagsaver.flagsaver(saved_model_dir=report.export_dir), pytest.raises(SystemExit) as exit_:
        tool.main(["cc_loader_check.py"])
    assert exit_.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["step (x): image: differs", "MISMATCH: 1 difference(s) between the C++ and Python loaders"]


def test_the_binary_is_cached_by_what_it_depends_on(binary, tmp_path):
    from tf_style import cc_build

    assert cc_build.build().path == binary.path and cc_build.build().cached
    toolchain = binary.toolchain
    key = cc_build.cache_key(toolchain)
    assert binary.path.endswith(key) and cc_build.cache_key(toolchain) == key
    for change in ({"tf_version": "2.99.0"}, {"cxx_version": "g++ 99"}, {"tf_lib": str(tmp_path)}):
        assert cc_build.cache_key(toolchain.__class__(**{**toolchain.__dict__, **change})) != key, change
    edited = tmp_path / "check.cc"
    edited.write_text(open(cc_build.SOURCE).read() + "\n// edited\n")
    assert cc_build.cache_key(toolchain, str(edited)) != key


def test_link_order_is_the_one_that_registers_the_session_factory(binary):
    """Linked the default way, LoadSavedModel fails: 'No session factory registered ...'."""
    from tf_style import cc_build

    command = cc_build.command(binary.toolchain, "x.cc", "x")
    at = command.index
    assert at("-Wl,--no-as-needed") < at("-l:libtensorflow_framework.so.2") < at("-l:libtensorflow_cc.so.2")
    assert f"-Wl,-rpath,{binary.toolchain.tf_lib}" in command
