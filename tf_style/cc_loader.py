"""TensorFlow Serving's own C++ loader against the Python loader on one export: the library twin
of tools/cc_loader_check.py.

`check(saved_model_dir)` builds (or takes from the cache) tf_style/cc/saved_model_check.cc
(tf_style.cc_build), which loads the export with ``tensorflow::LoadSavedModel`` and answers each
request with one ``Session::Run`` on the signature's tensor names, as the model server does. The
same export is loaded here with the TF1 loader (``tf.compat.v1.saved_model.loader.load``, in a
graph of its own), the same requests are answered, and everything is compared: the signature
definitions, then every output of every request, and the error of a malformed request.

The requests exercise every signature (`requests`): ``serving_default`` on two encoded pairs
(the shipped photo and artwork, each way round), a malformed image (INVALID_ARGUMENT expected),
``targets`` on each image, ``init_state`` on the export's start image, and ``step`` on that
image, that state and those targets (taken from the Python loader's answers, which the C++
answers are then checked to equal).

The comparison's rules (bit for bit, and why) are tf_style.cc_compare's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2, struct_pb2

from tf_style import cc_build, export
from tf_style.cc_compare import Answer, Request, compare, compare_signatures
from tf_style.errors import Field, InputError
from tf_style.serving import SIGNATURES

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
#: The encoded images the requests send: the shipped photo and artwork, decoded in the graph.
IMAGES = {"photo": os.path.join(DATA, "chelsea.jpg"), "artwork": os.path.join(DATA, "hubble_deep_field.jpg")}
MALFORMED = b"this is not an image"
#: The signature_def entry TF2's saver adds for its initialiser: run by the loader, not a request.
INIT_OP = "__saved_model_init_op"


@dataclasses.dataclass
class Report:
    export_dir: str  # the version folder checked
    chosen: str  # how it was found ("" when given directly)
    binary: cc_build.Binary
    rows: list[tuple[str, str, str]]  # (signature, request, result)
    problems: list[str]  # each mismatch, one line
    exchanges: list[tuple[Request, Answer, Answer]]  # each request, the Python and the C++ answer

    @property
    def ok(self) -> bool:
        return not self.problems


class PythonLoader:
    """The export as the Python TF1 loader gives it: one session in a graph of its own."""

    def __init__(self, export_dir: str):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        quiet = logging.getLogger("tensorflow")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # not the TF1 loader's deprecation warning: it is the server's path
        try:
            with self.graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], export_dir)
        except (tf.errors.OpError, OSError, ValueError, RuntimeError) as e:
            self.session.close()
            message = " ".join(str(e).split())[:500]
            raise InputError(
                Field("saved_model_dir"), f": {export_dir} is not a SavedModel the TF1 loader can load "
                f"({type(e).__name__}: {message})"
            ) from None
        finally:
            quiet.setLevel(level)
        self.signatures = dict(meta_graph.signature_def)

    def answer(self, request: Request) -> Answer:
        signature = self.signatures[request.signature]
        fetches = {k: v.name for k, v in signature.outputs.items()}
        feeds = {signature.inputs[k].name: v for k, v in request.inputs.items()}
        try:
            outputs = self.session.run(fetches, feeds)
        except tf.errors.OpError as e:
            return Answer(error=(error_codes_pb2.Code.Name(e.error_code), e.message))
        return Answer(outputs={k: np.asarray(v) for k, v in outputs.items()})

    def close(self) -> None:
        self.session.close()


def strings(*items: bytes) -> np.ndarray:
    return np.array(items, dtype=object)


def requests(loader: PythonLoader) -> list[tuple[Request, Answer]]:
    """Requests for every signature, with the Python loader's answers; `step` is fed the image,
    state and targets the earlier answers give."""
    photo, artwork = (open(IMAGES[k], "rb").read() for k in ("photo", "artwork"))
    done: list[tuple[Request, Answer]] = []

    def ask(label: str, signature: str, expect: str | None = None, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        request = Request(label, signature, inputs, expect)
        answer = loader.answer(request)
        done.append((request, answer))
        if answer.error is not None and expect is None:
            raise InputError(f"{signature} ({label}) failed in the Python loader: {answer.error[0]}: {answer.error[1]}")
        return answer.outputs or {}

    ask("2 pairs", "serving_default", content_bytes=strings(photo, artwork), style_bytes=strings(artwork, photo))
    malformed = {"content_bytes": strings(MALFORMED), "style_bytes": strings(artwork)}
    ask("malformed image", "serving_default", "INVALID_ARGUMENT", **malformed)
    content = ask("photo", "targets", image_bytes=strings(photo))
    style = ask("artwork", "targets", image_bytes=strings(artwork))
    image = content["initial_image"]
    state = ask("start image", "init_state", image=image)
    feeds: dict[str, np.ndarray] = {}
    for key in loader.signatures["step"].inputs:
        source = state if key.startswith("state_") else content if key.startswith("content_") else style
        feeds[key] = image if key == "image" else source[key]
    ask("start, its state, targets", "step", **feeds)
    return done


def structured(requests: list[Request]) -> struct_pb2.StructuredValue:
    """The requests as the program reads them (see saved_model_check.cc)."""
    out = struct_pb2.StructuredValue()
    for request in requests:
        item = out.list_value.values.add().dict_value.fields
        item["signature"].string_value = request.signature
        for key, value in request.inputs.items():
            item["inputs"].dict_value.fields[key].tensor_value.CopyFrom(tf.make_tensor_proto(value))
    return out


def answer_of(value: struct_pb2.StructuredValue) -> Answer:
    fields = value.dict_value.fields
    if "outputs" in fields:
        outputs = fields["outputs"].dict_value.fields
        return Answer(outputs={k: tf.make_ndarray(v.tensor_value) for k, v in outputs.items()})
    code = error_codes_pb2.Code.Name(fields["error_code"].int64_value)
    return Answer(error=(code, fields["error_message"].string_value))


@dataclasses.dataclass
class CcRun:
    signatures: dict[str, Any]  # name -> SignatureDef, as the C++ loader sees them
    answers: list[Answer]
    load_error: tuple[str, str] | None = None


def run_cc(binary: str, export_dir: str, requests: list[Request], timeout: float | None = None) -> CcRun:
    """The program's answers to `requests`, from one LoadSavedModel and one Session::Run each."""
    with tempfile.TemporaryDirectory(prefix="tf_style_cc_") as tmp:
        paths = [os.path.join(tmp, name) for name in ("requests.pb", "result.pb", "signatures.pb")]
        with open(paths[0], "wb") as f:
            f.write(structured(requests).SerializeToString())
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        proc = subprocess.run([binary, export_dir, *paths], capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env)
        if proc.returncode != 0 or not os.path.exists(paths[1]):
            tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
            raise cc_build.CcError(
                f"{binary} exited with status {proc.returncode}; expected 0 and an answer file. Its last lines:\n{tail}"
            )
        result = struct_pb2.StructuredValue.FromString(open(paths[1], "rb").read()).dict_value.fields
        if "load_error" in result:
            return CcRun({}, [], answer_of(result["load_error"]).error)
        signatures = meta_graph_pb2.MetaGraphDef.FromString(open(paths[2], "rb").read()).signature_def
        return CcRun(dict(signatures), [answer_of(v) for v in result["responses"].list_value.values])


def check(saved_model_dir: str, cxx: str | None = None, cache: str | None = None) -> Report:
    """Loads the export in both loaders, asks both the same questions, compares the answers."""
    export_dir, chosen = export.served_folder(saved_model_dir)
    toolchain = cc_build.find_toolchain(cxx)  # no compiler: said before anything is loaded
    loader = PythonLoader(export_dir)  # a broken export: refused before anything is built
    try:
        served = set(loader.signatures) - {INIT_OP}
        if served != set(SIGNATURES):
            raise InputError(Field("saved_model_dir"), f": expected a tf_style export with the signatures "
                             f"{sorted(SIGNATURES)}; got {sorted(served)} in {export_dir}")
        binary = cc_build.build(toolchain=toolchain, cache=cache)
        asked = requests(loader)
        cc = run_cc(binary.path, export_dir, [r for r, _ in asked])
    finally:
        loader.close()
    if cc.load_error is not None:
        code, message = cc.load_error
        hint = (" (the program must link libtensorflow_framework before libtensorflow_cc, with the linker's "
                "no-as-needed option: tf_style/cc_build.py)") if "session factory" in message else ""
        problem = f"the C++ loader could not load {export_dir}: {code}: {message}{hint}"
        return Report(export_dir, chosen, binary, [], [problem], [])
    problems = compare_signatures(loader.signatures, cc.signatures)
    unasked = sorted(set(SIGNATURES) - {r.signature for r, _ in asked})
    problems += [f"signatures not exercised: {unasked}"] if unasked else []
    if len(cc.answers) != len(asked):
        problems.append(f"expected {len(asked)} answers from the C++ program; got {len(cc.answers)}")
    rows = []
    for (request, expected), got in zip(asked, cc.answers):
        found = compare(request, expected, got)
        problems += found
        verdict = "DIFFERENT" if found else f"{expected.error[0]} in both" if expected.error else (
            f"{len(expected.outputs)} outputs identical")
        rows.append((request.signature, request.label, verdict))
    exchanges = [(r, e, g) for (r, e), g in zip(asked, cc.answers)]
    return Report(export_dir, chosen, binary, rows, problems, exchanges)


def summary(report: Report) -> str:
    """The report as a few lines: what was loaded with what, a table of requests, the verdict."""
    b = report.binary
    lines = [f"checked {report.export_dir}" + (f" ({report.chosen})" if report.chosen else ""),
             f"C++ loader: {b.path} ({'cached' if b.cached else f'built in {b.seconds:.1f} s'}; "
             f"{b.toolchain.cxx_version}; tensorflow {b.toolchain.tf_version})"]
    width = max([len(s) for s, _, _ in report.rows] + [9])
    label = max([len(r) for _, r, _ in report.rows] + [7])
    lines += [f"{'signature':<{width}}  {'request':<{label}}  result"]
    lines += [f"{s:<{width}}  {r:<{label}}  {v}" for s, r, v in report.rows]
    lines += report.problems
    signatures = len({s for s, _, _ in report.rows})
    lines.append(f"parity: {signatures} signatures, {len(report.rows)} requests, every answer identical bit for bit"
                 if report.ok else f"MISMATCH: {len(report.problems)} difference(s) between the C++ and Python loaders")
    return "\n".join(lines)


__all__ = ["CcRun", "IMAGES", "PythonLoader", "Report", "check", "requests", "run_cc", "structured", "summary"]
