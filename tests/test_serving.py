"""The SavedModel export, tested along TensorFlow Serving's own path.

The server binary cannot be installed here, so the export is loaded in a fresh process with
the TF1 loader and every request is one Session.run on the signature's tensor names, which is
what the C++ server does (tests/serving_runner.py), with the REST JSON mapping rebuilt from
the documented rules (tests/serving_rest.py). One export (tiny: 32 px, 3 steps, seeded random
VGG19) and one runner process serve all tests, to keep the file fast on 2 cores.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import importlib.util
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import CONTENT_PATH, STYLE_PATH, gamma, graph_rtol, network_rtol
from tf_style.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "export_savedmodel.py")
RUNNER = os.path.join(ROOT, "tests", "serving_runner.py")

SIZE, STEPS, SEED, TV = 32, 3, 7, 1e-3
# The library and the export run the same float32 ops in two graphs (conftest.graph_rtol): their losses lie within
# graph_rtol of each other, and their 8-bit pictures differ by at most a level, in fewer than 1 % of the values
# (floats that close round alike unless one lies next to a half level; measured bit for bit equal here).
EXPORT_FLAGS = [
    "--optimizer=adam",  # the step signature's Adam state (t, m, v) is what the tests below feed; L-BFGS: in-process
    "--weights=random",
    f"--image_size={SIZE}",
    f"--num_steps={STEPS}",
    f"--seed={SEED}",
    f"--tv_weight={TV}",
]
# The export's default limits, as the tool writes them (tests/test_serving_abuse.py sets its own).
LIMITS = {"max_image_bytes": 32 * 2**20, "max_image_pixels": 50_000_000}
TERMS = ("total", "content", "style", "tv", "content/conv4_2") + tuple(
    f"style/conv{i}_1" for i in range(1, 6)
)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return e


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def library_config():
    from tf_style.config import Config

    return Config(image_size=SIZE, num_steps=STEPS, seed=SEED, tv_weight=TV, weights="random", optimizer="adam")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, bytes]:
    """Encoded test images. `content`/`style` are PNGs already at the export's size, so resizing
    is the identity in the library and in the graph and both see the same pixels."""
    from tf_style import images

    folder = tmp_path_factory.mktemp("inputs")
    content = images.to_uint8(images.resize_longest(images.load_image(CONTENT_PATH), SIZE))  # 21x32
    style = images.to_uint8(images.resize_longest(images.load_image(STYLE_PATH), SIZE))  # 32x28
    rng = np.random.default_rng(3)
    out = {
        "content": png_bytes(content),
        "style": png_bytes(style),
        "noise_wide": png_bytes(rng.integers(0, 256, (21, 32, 3), dtype=np.uint8)),
        "noise_tall": png_bytes(rng.integers(0, 256, (32, 18, 3), dtype=np.uint8)),
        "grey": png_bytes(rng.integers(0, 256, (40, 40), dtype=np.uint8)),  # 1 channel, resized to 32x32
        "jpeg": open(CONTENT_PATH, "rb").read(),  # 300x451 JPEG: resized in the graph
    }
    for name in ("content", "style"):
        (folder / f"{name}.png").write_bytes(out[name])
    out["content_path"] = str(folder / "content.png")
    out["style_path"] = str(folder / "style.png")
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> dict[str, str]:
    """The tool's export (the script, as a user runs it)."""
    base = tmp_path_factory.mktemp("models") / "tf_style"
    proc = subprocess.run(
        [sys.executable, TOOL, f"--export_dir={base}", *EXPORT_FLAGS],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"base": str(base), "path": str(base / "1"), "stdout": proc.stdout}


def session_job(id_: str, signature: str, **feeds) -> dict:
    return {"id": id_, "kind": "session", "signature": signature, "feeds": feeds}


def default_job(id_: str, content: list[bytes], style: list[bytes]) -> dict:
    return session_job(
        id_, "serving_default", content_bytes=np.array(content, dtype=object), style_bytes=np.array(style, dtype=object)
    )


@pytest.fixture(scope="module")
def library(inputs):
    """The library's own run on the same pixels and seed, and its one-step counterpart."""
    from tf_style import api
    from tf_style.loop import run_steps

    config = library_config()
    content, style = api.prepare_images(config, inputs["content_path"], inputs["style_path"])
    run = api.build_synthesis(config, content, style)
    first_state = {
        "image": run.image.numpy(),
        "content_targets": {k: v.numpy() for k, v in run.objective.content_targets.items()},
        "style_targets": {k: (t.gram.numpy(), int(t.positions)) for k, t in run.objective.style_targets.items()},
    }
    first = api.build_synthesis(config, content, style)
    first_terms = {k: v.numpy() for k, v in first.step().items()}
    state = run_steps(run, config.num_steps)
    final_terms = {k: v.numpy() for k, v in run.objective(run.image).items()}
    from tf_style import images

    return {
        "content": content,
        "style": style,
        "image": images.to_uint8(run.image_array()),
        "final_terms": final_terms,
        "history": state.history,
        "first": first_state,
        "first_step_image": first.image.numpy(),
        "first_step_state": {k: v.numpy() for k, v in first.state._asdict().items()},
        "first_terms": first_terms,
    }


# Two pairs of each output size with different content, so a mixed-up answer cannot pass.
# With 3 Adam steps the style term decides the picture: pairs of one size differ in style.
PAIRS = [
    ("content", "style"),
    ("jpeg", "grey"),
    ("noise_wide", "noise_tall"),
    ("noise_tall", "grey"),
    ("grey", "noise_tall"),
]


@pytest.fixture(scope="module")
def served(export, inputs, library, tmp_path_factory) -> dict:
    """Every request of the tests, answered by one TF1 session in a fresh process."""
    first = library["first"]
    step_feeds = {
        "image": first["image"],
        "state_t": np.float32(0.0),
        "state_m": np.zeros_like(first["image"]),
        "state_v": np.zeros_like(first["image"]),
    }
    for name, target in first["content_targets"].items():
        step_feeds[f"content_{name}"] = target
    for name, (gram, positions) in first["style_targets"].items():
        step_feeds[f"gram_{name}"] = gram
        step_feeds[f"positions_{name}"] = np.array([positions], np.int32)
    b64 = {k: base64.b64encode(v).decode("ascii") for k, v in inputs.items() if isinstance(v, bytes)}
    truncated = inputs["content"][:60]  # a PNG header, then nothing
    tiny = png_bytes(np.zeros((4, 64, 3), np.uint8))  # 2x32 at 32 px: conv5_1 needs 16 px per side
    pairs = [(inputs[c], inputs[s]) for c, s in PAIRS]
    plan = [
        {"id": "signatures", "kind": "signatures"},
        default_job("single", [inputs["content"]], [inputs["style"]]),
        default_job("batch", [p[0] for p in pairs], [p[1] for p in pairs]),
        session_job("targets_content", "targets", image_bytes=np.array([inputs["content"]], dtype=object)),
        session_job("targets_style", "targets", image_bytes=np.array([inputs["style"]], dtype=object)),
        session_job("targets_two", "targets", image_bytes=np.array([inputs["content"]] * 2, dtype=object)),
        session_job("step", "step", **step_feeds),
        session_job("init_state", "init_state", image=first["image"]),
        default_job("garbage", [b"this is not an image"], [inputs["style"]]),
        default_job("truncated", [inputs["content"]], [truncated]),
        default_job("empty", [], []),
        default_job("mismatch", [inputs["content"], inputs["content"]], [inputs["style"]]),
        default_job("tiny", [tiny], [inputs["style"]]),
        default_job("after_bad", [inputs["content"]], [inputs["style"]]),
        {
            "id": "rest_columnar",
            "kind": "rest",
            "body": json.dumps(
                {"inputs": {"content_bytes": [{"b64": b64["content"]}], "style_bytes": [{"b64": b64["style"]}]}}
            ),
        },
        {
            "id": "rest_rows",
            "kind": "rest",
            "body": json.dumps(
                {
                    "signature_name": "serving_default",
                    "instances": [
                        {"content_bytes": {"b64": b64[c]}, "style_bytes": {"b64": b64[s]}} for c, s in PAIRS[:2]
                    ],
                }
            ),
        },
        {
            "id": "rest_targets_rows",
            "kind": "rest",
            "body": json.dumps({"signature_name": "targets", "instances": [{"b64": b64["style"]}]}),
        },
        {"id": "client", "kind": "client", "content": inputs["content"], "style": inputs["style"], "num_steps": STEPS},
    ]
    plan += [default_job(f"alone{i}", [c], [s]) for i, (c, s) in enumerate(pairs)]
    # Each pair twice, spread over 4 threads that start together on the one session.
    concurrent = [default_job(f"c{i}", [c], [s]) for i, (c, s) in enumerate(pairs + pairs)]
    plan.append({"id": "concurrent", "kind": "concurrent", "jobs": concurrent, "threads": 4})
    folder = tmp_path_factory.mktemp("runner")
    plan_path, result_path = folder / "plan.pkl", folder / "result.pkl"
    with open(plan_path, "wb") as f:
        pickle.dump(plan, f)
    proc = subprocess.run(
        [sys.executable, RUNNER, export["path"], str(plan_path), str(result_path)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(result_path, "rb") as f:
        return pickle.load(f)


def outputs(served: dict, id_: str) -> dict:
    result = served[id_]
    assert "outputs" in result, result.get("error")
    return result["outputs"]


def error(served: dict, id_: str) -> tuple[str, str]:
    result = served[id_]
    assert "error" in result, f"{id_} was answered: {result}"
    return result["error"]


# -- the export tool --------------------------------------------------------------------------------


def test_tool_writes_version_1_with_its_config(export):
    from tf_style import export as export_lib
    from tf_style.config import Config

    base = export["base"]
    assert sorted(os.listdir(base)) == ["1"]  # the temporary folder was renamed, nothing left over
    with open(os.path.join(export["path"], export_lib.CONFIG_ASSET)) as f:
        saved = json.load(f)
    # The asset is Config.to_dict(): it gives back exactly the Config the tool's flags made, with
    # dtype_policy="auto" as the export computes it, float32 (tf_style.precision.exported).
    assert library_config().dtype_policy == "auto"
    exported = library_config().replace(dtype_policy="float32")
    assert export_lib.read_config(export["path"]) == exported
    assert saved["config"] == exported.to_dict() and saved["config"]["tv_weight"] == TV
    assert Config.from_dict(saved["config"]).effective_learning_rate == 10.0
    assert saved["signatures"] == ["serving_default", "targets", "step", "init_state"]
    assert saved["limits"] == LIMITS == {"max_image_bytes": export_lib.DEFAULT_MAX_IMAGE_BYTES,
                                         "max_image_pixels": export_lib.DEFAULT_MAX_IMAGE_PIXELS}
    assert export["stdout"].splitlines()[0] == f"exported {export['path']}"
    printed = json.loads(export["stdout"].split("\n", 1)[1])
    assert printed == saved


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--image_size=8", "export_savedmodel.py: error: flag --image_size=8: 8 is not an integer in the range [16, 8192]"),
        ("--learning_rate=0", "export_savedmodel.py: error: --learning_rate must be a finite number > 0; got 0.0"),
        ("--init=content", "export_savedmodel.py: error: Unknown command line flag 'init'"),
        ("--style_layers=conv9_1", "export_savedmodel.py: error: --style_layers: unknown VGG19 layer 'conv9_1'"),
        ("--pooling=min", "export_savedmodel.py: error: flag --pooling=min: value should be one of <avg|max>"),
        ("--max_image_bytes=1000", "export_savedmodel.py: error: --max_image_bytes must be an integer from 1024 "
         "(1 KiB: hardly an image is smaller) to 2147483647 (2 GiB, the most TensorFlow's string ops count); got 1000"),
        ("--max_image_pixels=262143", "export_savedmodel.py: error: --max_image_pixels must be an integer from 262144 "
         "(--image_size squared: a smaller limit refuses a square picture at the size the model paints) to 2^62; "
         "got 262143"),
        ("--max_image_pixels=1e9", "export_savedmodel.py: error: flag --max_image_pixels=1e9: invalid literal for int()"),
    ],
)
def test_tool_bad_flag_is_one_line_and_exit_2(tmp_path, flag, message):
    proc = subprocess.run(
        [sys.executable, TOOL, f"--export_dir={tmp_path / 'm'}", flag], capture_output=True, text=True, env=env()
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_tool_requires_export_dir():
    proc = subprocess.run([sys.executable, TOOL], capture_output=True, text=True, env=env())
    assert proc.returncode == 2
    assert proc.stderr == (
        "export_savedmodel.py: error: --export_dir is required "
        "(the model's base folder, e.g. --export_dir=/models/tf_style)\n"
    )


def test_tool_export_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file.txt").write_text("mine")
    under = tmp_path / "file.txt" / "m"
    proc = subprocess.run([sys.executable, TOOL, f"--export_dir={under}"], capture_output=True, text=True, env=env())
    assert (proc.returncode, proc.stderr) == (
        2, f"export_savedmodel.py: error: --export_dir: {under} is under {under.parent}, which is a file; expected a folder\n")
    assert (tmp_path / "file.txt").read_text() == "mine"


def test_next_version_follows_the_highest_integer_folder(tmp_path):
    from tf_style import export as export_lib

    assert export_lib.next_version(str(tmp_path / "missing")) == 1
    for name in ("1", "3", "12abc", ".tmp-x9"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file named like a version still counts: the server would see it")
    assert export_lib.next_version(str(tmp_path)) == 8


def test_existing_version_and_unexportable_settings_are_refused_before_any_work(export):
    from tf_style import export as export_lib
    from tf_style.errors import InputError

    with pytest.raises(InputError, match=r"^version: .*/1 already exists; pick another version or leave it out$"):
        export_lib.export_savedmodel(library_config(), export["base"], version=1)
    with pytest.raises(InputError, match=r"^normalize_vgg cannot be exported \(the network would be normalised"):
        export_lib.export_savedmodel(library_config().replace(normalize_vgg=True), export["base"])
    assert sorted(os.listdir(export["base"])) == ["1"]
    # A dict for the Config, a number for the folder: one line each, not an AttributeError or TypeError.
    with pytest.raises(InputError) as info:
        export_lib.export_savedmodel({"image_size": 32}, export["base"])
    assert str(info.value) == ("the export's settings must be a tf_style.Config; got dict (a dict of settings: "
                               "Config.from_dict(d))")
    with pytest.raises(InputError) as info:
        export_lib.export_savedmodel(library_config(), 5)
    assert str(info.value) == "export_dir: expected a folder path (a str or os.PathLike); got int 5"
    with pytest.raises(InputError, match=r"^the export's settings must be a tf_style.Config; got dict"):
        export_lib.export_config({"image_size": 32})
    with pytest.raises(InputError) as info:
        export_lib.export_savedmodel(library_config().replace(style_layers=()), export["base"])
    assert str(info.value) == "style_layers is empty: every request carries a style image, which would not be used"
    # NumPy integers are taken as plain ints: the limits reach the JSON asset, the version names the folder.
    with pytest.raises(InputError, match=r"^version: .*/1 already exists"):
        export_lib.export_savedmodel(library_config(), export["base"], version=np.int64(1))
    limits = export_lib.export_config(library_config(), np.int64(2048), np.uint32(10**6))["limits"]
    assert json.dumps(limits, sort_keys=True) == '{"max_image_bytes": 2048, "max_image_pixels": 1000000}'
    with pytest.raises(InputError, match=r"^max_image_bytes must be an integer from 1024 .*; got 2048.0$"):
        export_lib.export_config(library_config(), 2048.0)
    assert sorted(os.listdir(export["base"])) == ["1"]


# -- the saved graph ----------------------------------------------------------------------------------


def forbidden_in_graph(saved_model_pb: str) -> list[str]:
    """PyFunc-family ops and _XlaMustCompile attributes anywhere in a SavedModel's graph."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(saved_model_pb, "rb") as f:
        sm.ParseFromString(f.read())
    found = []
    for mg in sm.meta_graphs:
        nodes = list(mg.graph_def.node)
        for fn in mg.graph_def.library.function:
            nodes.extend(fn.node_def)
            if "_XlaMustCompile" in fn.attr and fn.attr["_XlaMustCompile"].b:
                found.append(f"function {fn.signature.name}: _XlaMustCompile")
        for node in nodes:
            if node.op in ("PyFunc", "PyFuncStateless", "EagerPyFunc"):
                found.append(f"{node.name}: {node.op}")
            if "_XlaMustCompile" in node.attr and node.attr["_XlaMustCompile"].b:
                found.append(f"{node.name}: _XlaMustCompile")
    return found


def test_saved_graph_has_no_pyfunc_and_no_xla_must_compile(export, tmp_path):
    import tensorflow as tf

    assert forbidden_in_graph(os.path.join(export["path"], "saved_model.pb")) == []
    # The check itself finds both when they are there.
    bad = tf.Module()
    scalar = [tf.TensorSpec([], tf.float32)]
    bad.py = tf.function(lambda x: tf.py_function(lambda v: v * 2, [x], tf.float32), input_signature=scalar)
    bad.xla = tf.function(lambda x: x * 3, jit_compile=True, input_signature=scalar)
    tf.saved_model.save(bad, str(tmp_path / "bad"), signatures={"py": bad.py, "xla": bad.xla})
    found = forbidden_in_graph(str(tmp_path / "bad" / "saved_model.pb"))
    assert any("EagerPyFunc" in f for f in found) and any("_XlaMustCompile" in f for f in found)


def test_the_signatures_are_traced_without_autograph(monkeypatch):
    """The signatures' control flow is tf.cond and tf.while_loop already, so AutoGraph's conversion of the
    module's and Keras's Python bought nothing and cost ~a third of an export (L-BFGS, 64 px: 27 -> 17-22 s;
    the saved graphs hold the same ops). AutoGraph converts through `converted_call`: no call may reach it."""
    import tensorflow as tf
    from tensorflow.python.autograph.impl import api as autograph_api

    from tf_style import serving

    converted = []
    real = autograph_api.converted_call

    def spy(f, *args, **kwargs):
        converted.append(getattr(f, "__qualname__", repr(f)))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(autograph_api, "converted_call", spy)

    def plus_one(x):
        return x + 1

    tf.function(plus_one).get_concrete_function(tf.TensorSpec([], tf.float32))  # the spy sees AutoGraph at work
    assert converted == ["test_the_signatures_are_traced_without_autograph.<locals>.plus_one"], converted
    converted.clear()
    module = serving.StyleTransferModule(library_config().replace(scales=1), **LIMITS)
    assert sorted(module.signatures()) == ["init_state", "serving_default", "step", "targets"]
    assert converted == []


def test_signatures_as_the_tf1_loader_sees_them(served):
    sigs = outputs(served, "signatures")
    assert set(sigs) - {"__saved_model_init_op"} == {"serving_default", "targets", "step", "init_state"}
    default = sigs["serving_default"]
    assert default["method"] == "tensorflow/serving/predict"
    assert {k: v[1:] for k, v in default["inputs"].items()} == {"content_bytes": (7, [-1]), "style_bytes": (7, [-1])}
    assert set(default["outputs"]) == {"image_bytes"} | {"loss_" + t.replace("/", "_") for t in TERMS}
    assert default["outputs"]["image_bytes"][1] == 7  # DT_STRING, and its name ends in _bytes: b64 in REST
    assert set(sigs["targets"]["inputs"]) == {"image_bytes"}
    assert set(sigs["targets"]["outputs"]) == {"image", "initial_image", "content_conv4_2"} | {
        f"{kind}_conv{i}_1" for kind in ("gram", "positions") for i in range(1, 6)
    }
    step_in = set(sigs["step"]["inputs"])
    assert step_in == {"image", "state_t", "state_m", "state_v", "content_conv4_2"} | {
        f"{kind}_conv{i}_1" for kind in ("gram", "positions") for i in range(1, 6)
    }
    assert set(sigs["step"]["outputs"]) == {"image", "state_t", "state_m", "state_v"} | {
        "loss_" + t.replace("/", "_") for t in TERMS
    }
    assert set(sigs["init_state"]["inputs"]) == {"image"}
    assert set(sigs["init_state"]["outputs"]) == {"state_t", "state_m", "state_v"}


# -- serving_default ----------------------------------------------------------------------------------


def test_parity_with_the_library(served, library):
    out = outputs(served, "single")
    image = decode_png(out["image_bytes"][0])
    assert image.shape == library["image"].shape == (21, 32, 3)
    diff = np.abs(image.astype(int) - library["image"].astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (diff.max(), np.mean(diff > 0))
    for term in TERMS:
        got = out["loss_" + term.replace("/", "_")]
        assert got.shape == (1,)
        # The library's final terms are one more evaluation, at the final image, after its STEPS steps.
        np.testing.assert_allclose(got[0], library["final_terms"][term][0], rtol=graph_rtol(STEPS + 1), err_msg=term)
    # The loop really optimised: the final loss is below the first step's (noise) loss.
    assert out["loss_total"][0] < library["history"][0]["total"]


def test_each_pair_keeps_its_own_aspect_ratio(served, inputs):
    from tf_style import images

    out = outputs(served, "batch")
    assert out["image_bytes"].shape == (len(PAIRS),)
    for term in TERMS:
        assert out["loss_" + term.replace("/", "_")].shape == (len(PAIRS),)
    shapes = [decode_png(b).shape[:2] for b in out["image_bytes"]]
    expected = []
    for content_name, _ in PAIRS:
        h, w = np.asarray(Image.open(io.BytesIO(inputs[content_name]))).shape[:2]
        expected.append(images.size_for_longest_side(h, w, SIZE))
    assert shapes == expected == [(21, 32), (21, 32), (21, 32), (32, 18), (32, 32)]


def test_batch_answers_equal_the_single_requests(served):
    batch = outputs(served, "batch")
    for i in range(len(PAIRS)):
        alone = outputs(served, f"alone{i}")
        assert batch["image_bytes"][i] == alone["image_bytes"][0]
        np.testing.assert_array_equal(batch["loss_total"][i], alone["loss_total"][0])


def test_concurrent_requests_get_their_own_answers(served):
    results = served["concurrent"]
    n = len(PAIRS)
    assert len(results) == 2 * n
    for i, result in enumerate(results):
        assert "outputs" in result, result.get("error")
        alone = outputs(served, f"alone{i % n}")
        assert result["outputs"]["image_bytes"][0] == alone["image_bytes"][0], f"request {i}"
        for key, value in alone.items():
            np.testing.assert_array_equal(result["outputs"][key], value, err_msg=f"request {i}: {key}")
    # The four pairs really differ, so a mixed-up answer could not pass.
    assert len({outputs(served, f"alone{i}")["image_bytes"][0] for i in range(n)}) == n


def test_bad_requests_fail_as_invalid_argument_and_the_session_keeps_answering(served):
    cls, message = error(served, "garbage")
    assert cls == "InvalidArgumentError" and "content_bytes[0] is not a JPEG, PNG, GIF, BMP or WebP image" in message
    cls, message = error(served, "truncated")
    assert cls == "InvalidArgumentError" and "PNG" in message
    cls, message = error(served, "empty")
    assert cls == "InvalidArgumentError" and "empty batch" in message
    cls, message = error(served, "mismatch")
    assert cls == "InvalidArgumentError" and "must have the same length; got 2 and 1" in message
    cls, message = error(served, "tiny")
    assert cls == "InvalidArgumentError" and "content_bytes[0]: after resizing" in message and "got 2x32" in message
    cls, message = error(served, "targets_two")
    assert cls == "InvalidArgumentError" and "exactly one image per request; got 2" in message
    # The same session answered the next request, exactly as before the bad ones.
    after, before = outputs(served, "after_bad"), outputs(served, "single")
    assert after["image_bytes"][0] == before["image_bytes"][0]
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


# -- targets and step ------------------------------------------------------------------------------------


def test_targets_are_the_library_targets(served, library):
    import tensorflow as tf
    from tf_style.start import white_noise

    content = outputs(served, "targets_content")
    style = outputs(served, "targets_style")
    first = library["first"]
    np.testing.assert_array_equal(content["image"][0], library["content"])
    np.testing.assert_array_equal(style["image"][0], library["style"])
    np.testing.assert_array_equal(content["initial_image"], first["image"])
    np.testing.assert_array_equal(content["initial_image"][0], white_noise(tf.constant([21, 32]), SEED).numpy())
    np.testing.assert_allclose(content["content_conv4_2"], first["content_targets"]["conv4_2"], rtol=1e-5, atol=1e-4)
    for name, (gram, positions) in first["style_targets"].items():
        # G = F^T F, its M-term sums in two orders: 2 gamma_M of |F|^T|F| = G (features >= 0), at most the layer's
        # largest diagonal entry; the features themselves within half of network_rtol (forward only) of the layer's
        # scale, which moves G by twice that of the same scale. A layer's scale, not each entry's: small entries
        # and channels near silence are held to it too.
        scale = np.max(np.diagonal(gram, axis1=-2, axis2=-1))
        bound = (2 * gamma(int(positions)) + network_rtol()) * scale
        assert np.all(np.abs(style[f"gram_{name}"] - gram) <= bound), name
        assert style[f"positions_{name}"].tolist() == [positions]


def test_step_is_the_library_step(served, library):
    out = outputs(served, "step")
    np.testing.assert_allclose(out["image"], library["first_step_image"], atol=1e-3)
    state = library["first_step_state"]
    assert out["state_t"] == state["t"] == 1.0
    np.testing.assert_allclose(out["state_m"], state["m"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["state_v"], state["v"], rtol=1e-5, atol=1e-6)
    for term in TERMS:
        np.testing.assert_allclose(
            out["loss_" + term.replace("/", "_")], library["first_terms"][term], rtol=graph_rtol(1), err_msg=term
        )


def test_init_state_is_the_optimizers(served, library):
    out = outputs(served, "init_state")
    assert out["state_t"] == 0.0 and out["state_t"].shape == ()
    image = library["first"]["image"]
    np.testing.assert_array_equal(out["state_m"], np.zeros_like(image))
    np.testing.assert_array_equal(out["state_v"], np.zeros_like(image))


def test_lbfgs_export_loop_is_the_library_loop(inputs):
    """The module's serving function with L-BFGS (state of eleven tensors, bounded iterate) in-process."""
    import tensorflow as tf
    from tf_style import api, images, serving
    from tf_style.loop import run_steps
    from tf_style.optimizers import LBFGSState

    config = library_config().replace(optimizer="lbfgs")
    module = serving.StyleTransferModule(config, **LIMITS)
    out = tf.function(module.serve, autograph=False)(tf.constant([inputs["content"]]), tf.constant([inputs["style"]]))
    content, style = api.prepare_images(config, inputs["content_path"], inputs["style_path"])
    run = api.build_synthesis(config, content, style)
    state = run_steps(run, config.num_steps)
    expected = images.to_uint8(run.image_array())
    diff = np.abs(decode_png(out["image_bytes"].numpy()[0]).astype(int) - expected.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (diff.max(), np.mean(diff > 0))
    # L-BFGS reports the terms of the new image: the library's last step saw the final image.
    evaluations = int(run.state.evaluations.numpy())
    np.testing.assert_allclose(out["loss_total"].numpy()[0], state.history[-1]["total"], rtol=graph_rtol(evaluations))
    assert state.history[-1]["total"] < state.history[0]["total"]
    specs = module._state_specs()
    assert tuple(specs) == ("state_k", "state_f", "state_g", "state_s", "state_y", "state_count", "state_head",
                            "state_h_diag", "state_evaluations", "state_pg_norm", "state_pg_start", "state_sy",
                            "state_yy")
    assert tuple(specs) == tuple(f"state_{n}" for n in LBFGSState._fields)
    # int64 counters: an int32 variable would sit in host memory on a GPU (tf_style/lbfgs.py).
    assert specs["state_s"].shape.as_list() == [None] * 5 and specs["state_count"].dtype == tf.int64


@pytest.mark.parametrize("changes, plan_shapes", [
    ({}, [((22, 32), 4), ((43, 64), 2)]),  # both scales run
    # The coarse scale's style image would be 12 px, below any --style_size: the library leaves it out (shallow
    # layers keep a pixel of it), and so must the export.
    ({"style_size": 24, "content_layers": ("conv2_2",), "style_layers": ("conv1_1", "conv2_1")}, [((43, 64), 2)]),
])
def test_the_export_runs_the_librarys_coarse_to_fine_schedule(inputs, changes, plan_shapes):
    """Two scales (32 then 64 px, L-BFGS, steps 4 then 2), or the final one alone: serving_default equals tf_style.run."""
    import tensorflow as tf
    from tf_style import api, schedule, serving

    config = Config(image_size=64, scales=2, coarsest_size=32, num_steps=2, seed=SEED, weights="random",
                    optimizer="lbfgs", **changes)
    plan = schedule.plan(config, (43, 64), (32, 28))  # the style PNG is 32x28
    assert [(s.shape, s.steps) for s in plan] == plan_shapes
    module = serving.StyleTransferModule(config, **LIMITS)
    photo = open(CONTENT_PATH, "rb").read()
    out = tf.function(module.serve, autograph=False)(tf.constant([photo]), tf.constant([inputs["style"]]))
    result = api.run(config, CONTENT_PATH, inputs["style_path"])
    assert len(result.history) == sum(steps for _, steps in plan_shapes)
    got = decode_png(out["image_bytes"].numpy()[0])
    diff = np.abs(got.astype(int) - result.image.astype(int))
    # Pillow's and TensorFlow's Lanczos agree to ~1e-3 of a level, JPEG decoding exactly: the
    # optimisations see the same pixels, to float32 rounding.
    assert got.shape == result.image.shape == (43, 64, 3)
    assert diff.max() <= 2 and np.mean(diff > 0) < 0.02, (diff.max(), np.mean(diff > 0))
    np.testing.assert_allclose(out["loss_total"].numpy()[0], result.history[-1]["total"], rtol=1e-3)


def test_the_export_takes_the_style_at_style_size(inputs):
    """style_size is honoured in the graph as in the library: Grams of the style image resized to it."""
    import tensorflow as tf
    from tf_style import api, serving

    config = library_config().replace(style_size=24)
    module = serving.StyleTransferModule(config, **LIMITS)
    out = tf.function(module.targets, autograph=False)(tf.constant([inputs["jpeg"]]))  # the 451 x 300 photo
    assert out["image"].shape == (1, 21, 32, 3)  # content features at image_size
    _, style = api.prepare_images(config, None, CONTENT_PATH)
    assert style.shape == (16, 24, 3)
    assert int(out["positions_conv1_1"][0]) == 16 * 24 and int(out["positions_conv2_1"][0]) == 8 * 12
    synthesis = api.build_synthesis(config.replace(content_layers=(), init="noise", output_size=(21, 32)), None, style)
    np.testing.assert_allclose(out["gram_conv1_1"].numpy(), synthesis.objective.style_targets["conv1_1"].gram.numpy(),
                               rtol=1e-3, atol=1e-2)


def test_client_loop_over_rest_gives_the_served_picture(served):
    image, history = outputs(served, "client")
    assert len(history) == STEPS and history[-1]["total"] < history[0]["total"]
    served_image = decode_png(outputs(served, "single")["image_bytes"][0])
    mine = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    diff = np.abs(mine.astype(int) - served_image.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (diff.max(), np.mean(diff > 0))


# -- REST ---------------------------------------------------------------------------------------------


def test_rest_columnar_request_b64_in_and_out(served):
    reply = json.loads(outputs(served, "rest_columnar"))
    out = reply["outputs"]
    assert set(out["image_bytes"][0]) == {"b64"}
    assert base64.b64decode(out["image_bytes"][0]["b64"]) == outputs(served, "single")["image_bytes"][0]
    assert out["loss_total"] == [pytest.approx(float(outputs(served, "single")["loss_total"][0]), rel=1e-6)]


def test_rest_row_request_gives_one_prediction_per_instance(served):
    reply = json.loads(outputs(served, "rest_rows"))
    rows = reply["predictions"]
    assert len(rows) == 2
    batch = outputs(served, "batch")
    for i, row in enumerate(rows):
        assert set(row) == {"image_bytes"} | {"loss_" + t.replace("/", "_") for t in TERMS}
        assert base64.b64decode(row["image_bytes"]["b64"]) == batch["image_bytes"][i]
        assert row["loss_total"] == pytest.approx(float(batch["loss_total"][i]), rel=1e-6)


def test_rest_targets_in_row_format(served):
    rows = json.loads(outputs(served, "rest_targets_rows"))["predictions"]
    assert len(rows) == 1
    style = outputs(served, "targets_style")
    np.testing.assert_array_equal(np.asarray(rows[0]["gram_conv1_1"], np.float32), style["gram_conv1_1"][0])
    assert rows[0]["positions_conv1_1"] == int(style["positions_conv1_1"][0])


def test_rest_mapping_follows_the_documented_rules():
    """The mapping's own rules, on a fake signature: both keys, missing keys, scalar outputs in rows."""
    import serving_rest
    from tensorflow.core.protobuf import meta_graph_pb2

    mg = meta_graph_pb2.MetaGraphDef()
    sig = mg.signature_def["serving_default"]
    sig.inputs["x_bytes"].dtype = 7
    sig.inputs["x_bytes"].name = "x:0"
    sig.inputs["y"].dtype = 1
    sig.inputs["y"].name = "y:0"
    name, feeds, rows = serving_rest.request_to_feeds(
        json.dumps({"instances": [{"x_bytes": {"b64": "AAE="}, "y": [1.5]}, {"x_bytes": "hi", "y": [2]}]}), mg
    )
    assert name == "serving_default" and rows
    assert feeds["x_bytes"].tolist() == [b"\x00\x01", b"hi"] and feeds["y"].dtype == np.float32
    assert feeds["y"].tolist() == [[1.5], [2.0]]
    with pytest.raises(serving_rest.RestError, match="Not both"):
        serving_rest.request_to_feeds(json.dumps({"instances": [], "inputs": {}}), mg)
    with pytest.raises(serving_rest.RestError, match="Missing 'inputs' or 'instances'"):
        serving_rest.request_to_feeds(json.dumps({"signature_name": "serving_default"}), mg)
    with pytest.raises(serving_rest.RestError, match="row format needs every output"):
        serving_rest.outputs_to_response({"a": np.zeros([2]), "b": np.float32(1)}, row_format=True)
    with pytest.raises(serving_rest.RestError, match="row format needs every output"):
        serving_rest.outputs_to_response({"a": np.zeros([2]), "b": np.zeros([3])}, row_format=True)
    strings = {"out_bytes": np.array([b"\xff"], object), "text": np.array([b"ok"], object)}
    reply = json.loads(serving_rest.outputs_to_response(strings, row_format=False))
    assert reply == {"outputs": {"out_bytes": [{"b64": "/w=="}], "text": ["ok"]}}


def test_client_example_needs_exactly_one_server(tmp_path):
    example = os.path.join(ROOT, "tools", "serving_client_example.py")
    proc = subprocess.run(
        [sys.executable, example, "--content=a.png", "--style=b.png", f"--output={tmp_path / 'o.png'}"],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "serving_client_example.py: error: give exactly one of --server (REST) and --saved_model_dir (local SavedModel)\n"
    )


# -- the client example against a real HTTP server -------------------------------------------------

EXAMPLE = os.path.join(ROOT, "tools", "serving_client_example.py")
BAD_IMAGE = "content_bytes[0] is not a JPEG, PNG, GIF, BMP or WebP image"


def load_example():
    spec = importlib.util.spec_from_file_location("serving_client_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def refusing_server():
    """A local HTTP server answering as TensorFlow Serving does a bad request: 400 and
    {"error": ...} for the model's predict URL, 404 with an HTML page for any other path.
    Yields (address, received requests as (path, JSON body))."""
    received: list[tuple[str, dict]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body))
            if self.path == "/v1/models/tf_style:predict":
                status, kind, reply = 400, "application/json", json.dumps({"error": BAD_IMAGE})
            else:
                status, kind, reply = 404, "text/html", "<html>\n<body>Not\nhere</body>\n</html>"
            data = reply.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 10
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def direct_env() -> dict[str, str]:
    # conftest points http_proxy at a closed port so nothing leaves the machine; the loopback
    # servers here must be reached directly, or every test would see the proxy's refusal.
    e = env()
    e["no_proxy"] = e["NO_PROXY"] = "127.0.0.1"
    return e


def test_client_raises_the_servers_own_message_for_a_400(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    example = load_example()
    with refusing_server() as (address, received):
        client = example.RestClient(address, "tf_style", timeout=10)
        with pytest.raises(RuntimeError) as info:
            client.predict("targets", {"image_bytes": [b"not an image"]})
        assert str(info.value) == BAD_IMAGE
        assert received == [
            (
                "/v1/models/tf_style:predict",
                {"signature_name": "targets", "inputs": {"image_bytes": [{"b64": "bm90IGFuIGltYWdl"}]}},
            )
        ]
        # An error page that is not TensorFlow Serving's JSON: the status, on one line.
        with pytest.raises(RuntimeError) as info:
            example.RestClient(address, "other", timeout=10).predict("targets", {"image_bytes": [b"x"]})
        assert str(info.value) == (
            f"{address}/v1/models/other:predict: HTTP 404 Not Found: <html> <body>Not here</body> </html>"
        )


def client_args(tmp_path, server: str) -> list[str]:
    return [
        sys.executable, EXAMPLE, f"--server={server}", f"--content={CONTENT_PATH}", f"--style={STYLE_PATH}",
        f"--output={tmp_path / 'o.png'}", "--num_steps=1",
    ]


def test_client_tool_prints_the_servers_message_on_one_line_and_exits_2(tmp_path):
    with refusing_server() as (address, received):
        proc = subprocess.run(
            client_args(tmp_path, address), capture_output=True, text=True, env=direct_env(), timeout=60
        )
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, f"serving_client_example.py: error: {BAD_IMAGE}\n", "")
    assert [path for path, _ in received] == ["/v1/models/tf_style:predict"]  # stopped at the first refusal
    assert not (tmp_path / "o.png").exists()


def test_client_tool_unreachable_server_is_one_line_and_exit_2(tmp_path):
    port = closed_port()
    proc = subprocess.run(
        client_args(tmp_path, f"http://127.0.0.1:{port}"), capture_output=True, text=True, env=direct_env(), timeout=60
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"serving_client_example.py: error: cannot reach http://127.0.0.1:{port}/v1/models/tf_style:predict: "
        "[Errno 111] Connection refused\n"
    )
    assert not (tmp_path / "o.png").exists()


# Run as from a fresh clone: the repository root taken off sys.path (this venv has it on the
# path through its editable install), so only the tool's own sys.path line can find tf_style.
PLAIN_CLONE = (
    "import os, runpy, sys; root = sys.argv[1]; "
    "sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != root]; "
    "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.parametrize(
    "tool, args, message",
    [
        ("export_savedmodel.py", ["--export_dir=m", "--style_layers=conv9_1"],
         "export_savedmodel.py: error: --style_layers: unknown VGG19 layer 'conv9_1'; valid layers are conv1_1, "
         "conv1_2, pool1, conv2_1, conv2_2, pool2, conv3_1, conv3_2, conv3_3, conv3_4, pool3, conv4_1, conv4_2, "
         "conv4_3, conv4_4, pool4, conv5_1, conv5_2, conv5_3, conv5_4, pool5 (or Keras's names block1_conv1, "
         "block1_conv2, block1_pool, block2_conv1, block2_conv2, block2_pool, block3_conv1, block3_conv2, "
         "block3_conv3, block3_conv4, block3_pool, block4_conv1, block4_conv2, block4_conv3, block4_conv4, "
         "block4_pool, block5_conv1, block5_conv2, block5_conv3, block5_conv4, block5_pool)\n"),
        ("serving_client_example.py",
         ["--server=http://127.0.0.1:9", f"--content={CONTENT_PATH}", f"--style={STYLE_PATH}", "--output=o.xyz"],
         "serving_client_example.py: error: --output: cannot write o.xyz: unknown extension '.xyz'; "
         "use one of .png, .jpg, .jpeg, .webp, .bmp, .tif, .tiff, .gif\n"),
        ("benchmark.py", ["--what=optimizers", "--image_size=8"],
         "benchmark.py: error: --image_size must be between 16 and 8192 pixels; got 8\n"),
        ("benchmark.py", ["--single_scale_budgets=0.5,half"],
         "benchmark.py: error: --single_scale_budgets must be fractions of scipy's time, each a finite number > 0; "
         "got 'half'\n"),
    ],
)
def test_tools_run_from_a_plain_clone(tmp_path, tool, args, message):
    """Each case needs tf_style for its message: without the tool's sys.path line it would be
    a ModuleNotFoundError traceback instead."""
    e = env()
    e.pop("PYTHONPATH")
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_CLONE, ROOT, os.path.join(ROOT, "tools", tool), *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == message
    assert os.listdir(tmp_path) == []
