"""TensorFlow Serving's REST predict API, rebuilt from its documented rules, over a TF1 session.

The server binary cannot be installed here, so the tests drive a SavedModel the way the server
does: JSON in, one `Session.run` on the signature's tensor names, JSON out. The rules follow
https://www.tensorflow.org/tfx/serving/api_rest ("Predict API", "Encoding binary values"):

* The body has exactly one of "instances" (row format) or "inputs" (columnar), and an optional
  "signature_name" (default "serving_default").
* Row format: "instances" is a list, one entry per example. With several named inputs each entry
  is an object holding every input; the entries are stacked along a new dimension 0. With one
  named input an entry may be the bare value. The reply is {"predictions": [...]}, one entry per
  example (an object of outputs, or the bare value when there is one output); every output
  must therefore have rank >= 1 and the same dimension 0 as the others.
* Columnar format: "inputs" is an object of named tensors (or the bare tensor when there is one
  named input), taken as they are; the reply is {"outputs": {...}} (bare when one output).
* A string input value may be {"b64": "..."}: its base64 bytes. A string output is returned as
  {"b64": "..."} only when its name ends in "_bytes"; other string outputs are returned as text.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

# DataType enum values of the types these signatures use (tensorflow/core/framework/types.proto).
_NUMPY_FOR_DTYPE = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_, 4: np.uint8}
DT_STRING = 7


class RestError(ValueError):
    """The request would get an HTTP 400 from the server."""


def _decode_strings(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_decode_strings(v, where) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RestError(f"{where}: a JSON object as a value must be {{\"b64\": ...}}; got keys {sorted(value)}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as e:
            raise RestError(f"{where}: bad base64: {e}") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RestError(f"{where}: expected a string or {{\"b64\": ...}}; got {type(value).__name__}")


def _to_array(value: Any, tensor_info: Any, where: str) -> np.ndarray:
    if tensor_info.dtype == DT_STRING:
        return np.array(_decode_strings(value, where), dtype=object)
    dtype = _NUMPY_FOR_DTYPE.get(tensor_info.dtype)
    if dtype is None:
        raise RestError(f"{where}: dtype enum {tensor_info.dtype} cannot travel as JSON here")
    if dtype in (np.int32, np.int64, np.uint8) and any(
        isinstance(x, float) for x in np.asarray(value, dtype=object).reshape(-1)
    ):
        raise RestError(f"{where}: integer tensors need JSON integers")
    return np.asarray(value, dtype=dtype)


def request_to_feeds(body: str | bytes, meta_graph: Any) -> tuple[str, dict[str, np.ndarray], bool]:
    """A predict body -> (signature name, {input key: array}, row format?)."""
    try:
        request = json.loads(body)
    except json.JSONDecodeError as e:
        raise RestError(f"JSON Parse error: {e}") from None
    if not isinstance(request, dict):
        raise RestError("the request body must be a JSON object")
    name = request.get("signature_name", "serving_default")
    if name not in meta_graph.signature_def:
        raise RestError(f"Serving signature name: \"{name}\" not found in signature def")
    sig = meta_graph.signature_def[name]
    has_rows, has_cols = "instances" in request, "inputs" in request
    if has_rows == has_cols:
        raise RestError("Missing 'inputs' or 'instances' key" if not has_rows else "Not both 'inputs' and 'instances'")
    input_names = sorted(sig.inputs)
    feeds: dict[str, np.ndarray] = {}
    if has_rows:
        rows = request["instances"]
        if not isinstance(rows, list) or not rows:
            raise RestError("'instances' must be a non-empty list")
        if len(input_names) == 1 and not (isinstance(rows[0], dict) and set(rows[0]) - {"b64"}):
            columns = {input_names[0]: rows}
        else:
            columns = {}
            for i, row in enumerate(rows):
                if not isinstance(row, dict) or set(row) != set(input_names):
                    got = sorted(row) if isinstance(row, dict) else type(row).__name__
                    raise RestError(f"instance {i}: expected an object with the inputs {input_names}; got {got}")
                for key in input_names:
                    columns.setdefault(key, []).append(row[key])
        for key, values in columns.items():
            items = [_to_array(v, sig.inputs[key], f"instances[].{key}") for v in values]
            if len({a.shape for a in items}) != 1:
                raise RestError(f"input {key}: every instance must have the same shape")
            feeds[key] = np.stack(items)
    else:
        columns = request["inputs"]
        if not (isinstance(columns, dict) and set(columns) - {"b64"}):
            if len(input_names) != 1:
                raise RestError(f"'inputs' must name each of the inputs {input_names}")
            columns = {input_names[0]: columns}
        if set(columns) != set(input_names):
            raise RestError(f"'inputs' must hold exactly the inputs {input_names}; got {sorted(columns)}")
        for key in input_names:
            feeds[key] = _to_array(columns[key], sig.inputs[key], f"inputs.{key}")
    return name, feeds, has_rows


def _to_json(key: str, value: np.ndarray) -> Any:
    if value.dtype == object or value.dtype.kind == "S":
        as_b64 = key.endswith("_bytes")

        def enc(x: Any) -> Any:
            if isinstance(x, np.ndarray):
                return [enc(v) for v in x]
            if as_b64:
                return {"b64": base64.b64encode(x).decode("ascii")}
            return x.decode("utf-8")

        return enc(value) if value.ndim else enc(value.reshape(1))[0]
    return value.tolist()


def _item(value: np.ndarray, i: int) -> np.ndarray:
    item = np.asarray(value)[i]
    return item if isinstance(item, np.ndarray) else np.array(item, dtype=np.asarray(value).dtype)


def outputs_to_response(outputs: dict[str, np.ndarray], row_format: bool) -> str:
    """Session outputs -> the reply body, in the request's format."""
    if not row_format:
        cols = {k: _to_json(k, np.asarray(v)) for k, v in outputs.items()}
        return json.dumps({"outputs": cols if len(cols) != 1 else next(iter(cols.values()))})
    sizes = {k: (np.ndim(v) and np.shape(v)[0]) or None for k, v in outputs.items()}
    if any(np.ndim(v) == 0 for v in outputs.values()) or len(set(sizes.values())) != 1:
        raise RestError(
            "Tensor name: ... has inconsistent batch size ... expecting ...: row format needs every output "
            f"to have rank >= 1 and one dimension 0; got shapes { {k: np.shape(v) for k, v in outputs.items()} }"
        )
    n = next(iter(sizes.values()))
    rows = []
    for i in range(n):
        row = {k: _to_json(k, _item(v, i)) for k, v in outputs.items()}
        rows.append(row if len(row) != 1 else next(iter(row.values())))
    return json.dumps({"predictions": rows})


def predict(session: Any, meta_graph: Any, body: str | bytes) -> str:
    """What `POST /v1/models/NAME:predict` answers: one Session.run on the signature's tensor names."""
    name, feeds, row_format = request_to_feeds(body, meta_graph)
    sig = meta_graph.signature_def[name]
    fetches = {k: v.name for k, v in sig.outputs.items()}
    outputs = session.run(fetches, {sig.inputs[k].name: v for k, v in feeds.items()})
    return outputs_to_response(outputs, row_format)
