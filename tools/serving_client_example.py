"""A client that drives its own optimisation loop through the export's `step` signature.

`serving_default` runs the whole optimisation inside one request, which must finish within the
server's REST timeout (30 s by default). A client that wants to watch the picture form, stop
early, or run more steps than fit in one request calls `targets` once per image and
`init_state` once, then `step` as often as it likes; the optimiser's state travels with each
request, so the server keeps nothing between them and any number of clients can share it.

    # against TensorFlow Serving's REST API (started as in the README)
    python tools/serving_client_example.py --server=http://localhost:8501 --model_name=tf_style \\
        --content=photo.jpg --style=painting.jpg --output=out.png --num_steps=50

    # or against the SavedModel folder directly, the way the server runs it (TF1 loader + Session)
    python tools/serving_client_example.py --saved_model_dir=/models/tf_style/1 ...

The REST path needs only numpy, Pillow and tf_style's image module (no TensorFlow);
--saved_model_dir needs TensorFlow.
The step size, layers and weights are the export's; the number of steps is the client's.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable

import numpy as np

Arrays = dict[str, Any]


class RestClient:
    """TensorFlow Serving's REST predict API in columnar ("inputs") form.

    Args:
      server: e.g. "http://localhost:8501".
      model_name: the served model's name (the server's --model_name).
      post: (url, body) -> reply body; urllib by default (a test passes its own).

    A request the server refuses raises RuntimeError with the server's own message; so does
    an unreachable server or a reply that is not TensorFlow Serving's JSON.
    """

    def __init__(self, server: str, model_name: str, post: Callable[[str, str], str] | None = None, timeout: float = 600):
        self.url = f"{server.rstrip('/')}/v1/models/{model_name}:predict"
        self.timeout = timeout
        self.post = post or self._urllib_post

    def _urllib_post(self, url: str, body: str) -> str:
        request = urllib.request.Request(url, data=body.encode("utf-8"), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return reply.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            # TensorFlow Serving answers a bad request with HTTP 400 and {"error": "..."}; urllib
            # raises before anyone reads that body, so hand it on and let predict() raise the
            # server's own message. A body without it (a proxy's or another server's HTML
            # page) says nothing useful: name the status instead.
            text = e.read().decode("utf-8", "replace")
            parsed = _json_or_none(text)
            if isinstance(parsed, dict) and "error" in parsed:
                return text
            raise RuntimeError(f"{url}: HTTP {e.code} {e.reason}: {_one_line(text)[:200]}") from None
        except urllib.error.URLError as e:  # refused, unknown host, connect timeout
            raise RuntimeError(f"cannot reach {url}: {e.reason}") from None
        except TimeoutError:
            raise RuntimeError(f"{url}: no answer within {self.timeout:g} s") from None

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        body = {"signature_name": signature, "inputs": {k: _to_json(v) for k, v in inputs.items()}}
        text = self.post(self.url, json.dumps(body))
        reply = _json_or_none(text)
        if not isinstance(reply, dict) or not ("error" in reply or isinstance(reply.get("outputs"), dict)):
            raise RuntimeError(f"{self.url}: not a TensorFlow Serving predict reply: {_one_line(text)[:200]}")
        if "error" in reply:
            raise RuntimeError(str(reply["error"]))
        return {k: _from_json(k, v) for k, v in reply["outputs"].items()}


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class SessionClient:
    """The SavedModel run as TensorFlow Serving runs it: TF1 loader, one Session.run per request."""

    def __init__(self, saved_model_dir: str):
        import tensorflow as tf

        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], saved_model_dir)

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        sig = self.meta_graph.signature_def[signature]
        fetches = {k: v.name for k, v in sig.outputs.items()}
        return self.session.run(fetches, {sig.inputs[k].name: v for k, v in inputs.items()})


def _to_json(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], bytes):
        return [{"b64": base64.b64encode(v).decode("ascii")} for v in value]
    return np.asarray(value).tolist()


def _from_json(key: str, value: Any) -> Any:
    if key.endswith("_bytes"):
        return [base64.b64decode(v["b64"]) for v in value]
    array = np.asarray(value)  # JSON integers stay integers (positions, L-BFGS counters)
    return array.astype(np.float32) if array.dtype == np.float64 else array


def stylize(
    client: Any,
    content: bytes,
    style: bytes,
    num_steps: int,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """The optimisation loop, one `step` request per step.

    Returns the final image (float32 [H, W, 3], about [0, 255]) and each step's loss terms
    (as the library's step reports them).
    """
    c = client.predict("targets", {"image_bytes": [content]})
    s = client.predict("targets", {"image_bytes": [style]})
    image = c["initial_image"]  # the export's seeded white noise at the photo's size
    # The optimiser's state before the first step (whichever optimiser the export bakes in).
    state = client.predict("init_state", {"image": image})
    targets = {k: v for k, v in c.items() if k.startswith("content_")}
    targets.update({k: v for k, v in s.items() if k.startswith(("gram_", "positions_"))})
    history = []
    for i in range(num_steps):
        out = client.predict("step", {**targets, **state, "image": image})
        image = out["image"]
        state = {k: out[k] for k in state}
        terms = {k[len("loss_"):]: float(np.asarray(v).reshape(-1)[0]) for k, v in out.items() if k.startswith("loss_")}
        history.append(terms)
        if on_step is not None:
            on_step(i + 1, terms)
    return np.asarray(image, np.float32)[0], history


def _check_flags(argv: list[str]) -> None:
    """Every flag checked before a request is sent: one line and exit status 2 for the first bad one."""
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        _fail(f"unexpected argument(s) {' '.join(argv[1:])}")
    if bool(FLAGS.server) == bool(FLAGS.saved_model_dir):
        _fail("give exactly one of --server (REST) and --saved_model_dir (local SavedModel)")
    for flag in ("content", "style", "output"):
        if not getattr(FLAGS, flag):
            _fail(f"--{flag} is required")
    for flag in ("content", "style"):
        if not os.path.isfile(getattr(FLAGS, flag)):
            _fail(f"--{flag}: no such file: {getattr(FLAGS, flag)}")
    if FLAGS.num_steps < 1:
        _fail(f"--num_steps must be >= 1; got {FLAGS.num_steps}")
    from tf_style import images  # numpy + Pillow only
    from tf_style.cli_flags import render
    from tf_style.errors import InputError

    try:
        images.image_format_for(FLAGS.output)
    except InputError as e:
        _fail(render(e))
    if not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.output))):
        _fail(f"--output: the folder of {FLAGS.output} does not exist")


def main(argv: list[str]) -> None:
    from absl import flags

    from tf_style import images
    from tf_style.cli_flags import render
    from tf_style.errors import InputError

    FLAGS = flags.FLAGS
    _check_flags(argv)
    with open(FLAGS.content, "rb") as f:
        content = f.read()
    with open(FLAGS.style, "rb") as f:
        style = f.read()
    # What a server or SavedModel can answer with; each becomes one line and exit status 2.
    # RuntimeError: RestClient's (the server's message, unreachable, not a reply); OSError: a
    # missing SavedModel, or the output not writable.
    failures: tuple[type[BaseException], ...] = (RuntimeError, OSError)
    if FLAGS.server:
        client: Any = RestClient(FLAGS.server, FLAGS.model_name)
    else:
        # Only this path needs TensorFlow; its C++ start-up notices are hidden as in the CLI.
        from tf_style.startup import import_tensorflow_quietly

        import_tensorflow_quietly()
        import tensorflow as tf

        failures += (tf.errors.OpError,)  # e.g. InvalidArgumentError for an undecodable image
        # The TF1 loader is deliberate (it is the server's path): its deprecation notice is noise.
        tf.get_logger().setLevel("ERROR")
    started = 0.0  # set once the client is ready, so loading a SavedModel is not a step's time

    def report(step: int, terms: dict[str, float]) -> None:
        if step == 1 or step == FLAGS.num_steps or (FLAGS.print_every and step % FLAGS.print_every == 0):
            rate = (time.perf_counter() - started) / step
            print(f"step {step}/{FLAGS.num_steps}: total {terms['total']:.4g} ({rate:.2f} s/step)", flush=True)

    try:
        if not FLAGS.server:
            client = SessionClient(FLAGS.saved_model_dir)
        started = time.perf_counter()
        image, _ = stylize(client, content, style, FLAGS.num_steps, report)
        images.save_image(image, FLAGS.output)  # atomic; rounds like the export's PNG
    except InputError as e:
        _fail(render(e))
    except failures as e:
        # TensorFlow's messages continue with graph details on further lines: the first says it.
        lines = str(e).strip().splitlines()
        _fail(lines[0] if lines else type(e).__name__)
    except KeyboardInterrupt:
        print("\nserving_client_example.py: interrupted; nothing written", file=sys.stderr)
        sys.exit(130)
    print(f"wrote {FLAGS.output} ({image.shape[1]}x{image.shape[0]})")


def _fail(message: str) -> None:
    print(f"serving_client_example.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("server", None, "TensorFlow Serving's REST address, e.g. http://localhost:8501.")
    flags.DEFINE_string("model_name", "tf_style", "The served model's name.")
    flags.DEFINE_string("saved_model_dir", None, "Instead of --server: a version folder of the export, run locally.")
    flags.DEFINE_string("content", None, "The photograph (any format the export decodes).")
    flags.DEFINE_string("style", None, "The artwork.")
    flags.DEFINE_string("output", None, "Where to write the result (PNG).")
    flags.DEFINE_integer("num_steps", 100, "Steps to run (one request each).")
    flags.DEFINE_integer("print_every", 10, "Print the loss every N steps.")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Runnable from a fresh clone without installing: the repository root goes on the path
    # (only when run as a script; importing this module leaves sys.path alone).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from absl import app, flags as _flags

    _define_flags()

    def _parse(argv: list[str]) -> list[str]:
        try:
            return _flags.FLAGS(argv)
        except _flags.Error as e:
            _fail(" ".join(str(e).split()))
            raise

    app.run(main, flags_parser=_parse)
