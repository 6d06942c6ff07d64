"""How tf_style.cc_loader compares the C++ loader's answers with the Python loader's.

Outputs must be equal bit for bit, floats included: the tolerance is zero, on purpose. Both
loaders run the same graph (the same saved_model.pb) through the same kernels (the Python module
links the very libtensorflow_cc.so.2 and libtensorflow_framework.so.2 the C++ program links), on
the same CPU, in sessions with the default options (the same thread pools, so the same work
split), on the same input bytes: each float32 result is the same sequence of roundings. Float32
error analysis bounds the gap between *different* evaluation orders of a K-term sum by about
sqrt(K) * 2^-24 of its scale (as between Intel's and AMD's AVX-512 kernels, see BUILD_NOTES); no
such difference exists between two runs on one machine, whichever CPU it is, since both runs
use the kernels that CPU selects. So any difference at all means one loader ran something else,
which is what this check is for. Strings (the PNGs) and integers compare exactly; a status
compares by code and by the op's own message (`op_message`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np


@dataclasses.dataclass
class Request:
    label: str  # what the summary shows
    signature: str
    inputs: dict[str, np.ndarray]
    expected_error: str | None = None  # the status code both loaders must answer with, if any


@dataclasses.dataclass
class Answer:
    outputs: dict[str, np.ndarray] | None = None
    error: tuple[str, str] | None = None  # (status code name, message)


def difference(key: str, expected: np.ndarray, got: np.ndarray) -> str | None:
    """None when equal bit for bit; else what differs, and by how much."""
    if expected.dtype != got.dtype or expected.shape != got.shape:
        return (f"{key}: expected {expected.dtype} {list(expected.shape)} (Python); "
                f"got {got.dtype} {list(got.shape)} (C++)")
    if expected.dtype == object:
        differ = [i for i, (a, b) in enumerate(zip(expected.ravel(), got.ravel())) if a != b]
        if not differ:
            return None
        return f"{key}: {len(differ)} of {expected.size} strings differ (first at index {differ[0]})"
    if expected.tobytes() == got.tobytes():
        return None
    a, b = expected.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    gap = np.abs(a - b)[differ]
    return f"{key}: {int(differ.sum())} of {a.size} values differ, max difference {np.nanmax(gap, initial=0):.6g}"


def op_message(message: str) -> str:
    """An error's own text, without what each runtime wraps it in: Python's "Graph execution
    error:" and the failing node's location ("[[{{function_node ...}}{{node ...}}]]", which C++
    writes with the function's name)."""
    message = re.sub(r"^Graph execution error:\s*", "", message)
    return "\n".join(line for line in message.splitlines() if not re.fullmatch(r"\s*\[\[.*\]\]\s*", line)).strip()


def compare(request: Request, expected: Answer, got: Answer) -> list[str]:
    """Each way the C++ answer differs from the Python loader's, one line each."""
    where = f"{request.signature} ({request.label})"
    if request.expected_error:
        codes = {side: a.error[0] if a.error else "an answer" for side, a in (("Python", expected), ("C++", got))}
        wrong = [f"{where}: expected {request.expected_error}; got {c} ({s})" for s, c in codes.items()
                 if c != request.expected_error]
        if wrong:
            return wrong
    if expected.error or got.error:
        if expected.error and got.error and (expected.error[0], op_message(expected.error[1])) == (
                got.error[0], op_message(got.error[1])):
            return []
        said = {k: f"{e[0]}: {' '.join(op_message(e[1]).split())}" if e else "an answer"
                for k, e in (("Python", expected.error), ("C++", got.error))}
        return [f"{where}: expected {said['Python']} (Python); got {said['C++']} (C++)"]
    assert expected.outputs is not None and got.outputs is not None
    if sorted(expected.outputs) != sorted(got.outputs):
        return [f"{where}: expected outputs {sorted(expected.outputs)} (Python); got {sorted(got.outputs)} (C++)"]
    found = (difference(k, np.asarray(expected.outputs[k]), got.outputs[k]) for k in sorted(expected.outputs))
    return [f"{where}: {d}" for d in found if d]


def compare_signatures(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    if sorted(expected) != sorted(got):
        return [f"signatures: expected {sorted(expected)} (Python); got {sorted(got)} (C++)"]
    """The signature definitions (method, input and output keys, tensor names, dtypes, shapes)."""
    return [f"signature {n}: expected the same definition in both loaders; the C++ loader's differs"
            for n in sorted(expected) if expected[n] != got[n]]


__all__ = ["Answer", "Request", "compare", "compare_signatures", "difference", "op_message"]
