"""Runs requests against a SavedModel in a fresh process, the way TensorFlow Serving does.

    python serving_runner.py EXPORT_DIR PLAN.pkl RESULT.pkl

The export is loaded with the TF1 loader (`tf.compat.v1.saved_model.loader.load`, tag
"serve", the C++ server's path) into ONE session, and every request is one `Session.run` on the
signature's tensor names. PLAN is a pickled list of jobs, run in order:

* {"id", "kind": "session", "signature", "feeds": {input key: array}}
* {"id", "kind": "rest", "body": JSON string}   (tests/serving_rest.py: the REST mapping)
* {"id", "kind": "concurrent", "jobs": [session jobs], "threads": k}: the jobs are spread over
  k threads that start together and share the session; each job's answer is recorded.
* {"id", "kind": "client", "content", "style", "num_steps"}: tools/serving_client_example.py's
  loop, its REST requests answered by the REST mapping.
* {"id", "kind": "signatures"}: each signature's input and output keys, tensor names, dtypes.
* {"id", "kind": "measured", "signature", "feeds"}: one request, with its wall time and how
  much the process's peak resident memory rose while it ran ("seconds", "peak_rise_kb").
* {"id", "kind": "soak", "requests": [{"signature", "feeds"}], "threads", "rounds", "seconds", "seed"}:
  each request answered alone first (the baseline), then `threads` threads answer them on the one
  session, in rounds of every request in the thread's own seeded random order: at least `rounds`
  rounds each, and on for as long as `seconds` asks. After each round a thread records the process's
  resident memory (VmRSS) with the round's number: the samples follow the work done, however fast
  the machine.
  Answers are recorded as digests of their outputs (`digest`), errors as (class, message).

RESULT maps each id to {"outputs": ...} or {"error": (exception class name, message)}.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import random
import sys
import threading
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tensorflow as tf  # noqa: E402

import serving_rest  # noqa: E402


def run_session(sess: Any, meta_graph: Any, signature: str, feeds: dict[str, Any]) -> dict[str, Any]:
    sig = meta_graph.signature_def[signature]
    fetches = {k: v.name for k, v in sig.outputs.items()}
    return sess.run(fetches, {sig.inputs[k].name: v for k, v in feeds.items()})


def guarded(fn: Any) -> dict[str, Any]:
    try:
        return {"outputs": fn()}
    except Exception as e:  # noqa: BLE001 - the test inspects the class and message
        return {"error": (type(e).__name__, str(e))}


def run_concurrent(sess: Any, meta_graph: Any, jobs: list[dict[str, Any]], threads: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    barrier = threading.Barrier(threads)

    def worker(k: int) -> None:
        barrier.wait()
        for i in range(k, len(jobs), threads):
            job = jobs[i]
            results[i] = guarded(lambda: run_session(sess, meta_graph, job["signature"], job["feeds"]))

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results  # type: ignore[return-value]


def status_kb(field: str) -> int:
    """A /proc/self/status memory field in kB: VmRSS (resident now), VmHWM (peak since the last reset)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def run_measured(sess: Any, meta_graph: Any, job: dict[str, Any]) -> dict[str, Any]:
    """One request, its time, and how far the process's peak resident memory rose above the
    resident memory before it: writing 5 to /proc/self/clear_refs resets the peak (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, started = status_kb("VmRSS"), time.perf_counter()
    result = guarded(lambda: run_session(sess, meta_graph, job["signature"], job["feeds"]))
    result.update(seconds=time.perf_counter() - started, peak_rise_kb=status_kb("VmHWM") - before)
    return result


def digest(outputs: dict[str, Any]) -> str:
    """A SHA-256 of a request's outputs, bit for bit: names, dtypes, shapes and every value
    (string tensors element by element, with their lengths, since their buffers hold pointers)."""
    h = hashlib.sha256()
    for key in sorted(outputs):
        value = outputs[key]
        h.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        if value.dtype == object:
            for item in value.ravel():
                h.update(len(item).to_bytes(8, "little") + item)
        else:
            h.update(value.tobytes())
    return h.hexdigest()


def outcome(result: dict[str, Any]) -> tuple[str, Any]:
    """("ok", digest of the outputs) or ("error", (class, message))."""
    return ("ok", digest(result["outputs"])) if "outputs" in result else ("error", result["error"])


def run_soak(sess: Any, meta_graph: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The baseline (each request alone), then the threads' answers and the memory samples."""
    requests = job["requests"]

    def call(i: int) -> dict[str, Any]:
        return guarded(lambda: run_session(sess, meta_graph, requests[i]["signature"], requests[i]["feeds"]))

    alone = [call(i) for i in range(len(requests))]
    answers: list[tuple[int, int, str, Any]] = []  # (thread, request, "ok"/"error", digest/error)
    samples: list[tuple[int, int]] = []  # (rounds the sampling thread had finished, VmRSS kB)
    barrier = threading.Barrier(job["threads"] + 1)

    def worker(k: int) -> None:
        rng = random.Random(job["seed"] * 1000 + k)
        barrier.wait()
        rounds = 0
        while rounds < job["rounds"] or time.perf_counter() < deadline:
            order = list(range(len(requests)))
            rng.shuffle(order)
            for i in order:
                answers.append((k, i, *outcome(call(i))))  # list.append is atomic under the GIL
            rounds += 1
            samples.append((rounds, status_kb("VmRSS")))

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(job["threads"])]
    for t in pool:
        t.start()
    started = time.perf_counter()
    deadline = started + job["seconds"]  # read by the workers only once the barrier lets them go
    barrier.wait()
    for t in pool:
        t.join()
    return {
        "alone": [outcome(r) for r in alone],
        "alone_outputs": [r.get("outputs") for r in alone],
        "answers": answers,
        "rss": samples,
        "seconds": time.perf_counter() - started,
    }


def load_client_example() -> Any:
    path = os.path.join(os.path.dirname(HERE), "tools", "serving_client_example.py")
    spec = importlib.util.spec_from_file_location("serving_client_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def describe(meta_graph: Any) -> dict[str, Any]:
    out = {}
    for name, sig in meta_graph.signature_def.items():
        out[name] = {
            "method": sig.method_name,
            "inputs": {k: (v.name, v.dtype, [d.size for d in v.tensor_shape.dim]) for k, v in sig.inputs.items()},
            "outputs": {k: (v.name, v.dtype) for k, v in sig.outputs.items()},
        }
    return out


def main(export_dir: str, plan_path: str, result_path: str) -> None:
    with open(plan_path, "rb") as f:
        plan = pickle.load(f)
    results: dict[str, Any] = {}
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
        for job in plan:
            started = time.perf_counter()
            kind = job["kind"]
            if kind == "session":
                results[job["id"]] = guarded(lambda: run_session(sess, meta_graph, job["signature"], job["feeds"]))
            elif kind == "rest":
                results[job["id"]] = guarded(lambda: serving_rest.predict(sess, meta_graph, job["body"]))
            elif kind == "concurrent":
                results[job["id"]] = run_concurrent(sess, meta_graph, job["jobs"], job["threads"])
            elif kind == "client":
                example = load_client_example()
                client = example.RestClient(
                    "http://localhost:8501", "tf_style", post=lambda url, body: serving_rest.predict(sess, meta_graph, body)
                )
                results[job["id"]] = guarded(
                    lambda: example.stylize(client, job["content"], job["style"], job["num_steps"])
                )
            elif kind == "signatures":
                results[job["id"]] = {"outputs": describe(meta_graph)}
            elif kind == "measured":
                results[job["id"]] = run_measured(sess, meta_graph, job)
            elif kind == "soak":
                results[job["id"]] = {"outputs": run_soak(sess, meta_graph, job)}
            else:
                raise ValueError(f"unknown job kind {kind!r}")
            print(f"{job['id']}: {time.perf_counter() - started:.2f} s", file=sys.stderr)
    with open(result_path, "wb") as f:
        pickle.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
