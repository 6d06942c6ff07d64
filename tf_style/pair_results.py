"""One pair's fate in a batch job: skip or make, the model call with bad pairs isolated, its files.

Beam-free (tf_style.beam_pipeline wires these into DoFns), so the main test suite checks them.
- `state`: a pair whose PNG this job already made (its provenance chunk says so) is skipped; a
  file there that tf_style did not write, or made from other settings, is kept and the pair fails.
- `stylize_isolated`: the model answers a whole batch or fails it (one undecodable image is an
  INVALID_ARGUMENT for all), so a failed batch is retried one pair at a time and only the bad
  pairs fail; any other error (out of memory, a lost file system) propagates, for the runner to retry.
- `record` / `with_provenance`: what is written, with no time, host or output folder in it.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from typing import Any, Callable, Mapping, Sequence

from PIL import Image

from tf_style import provenance
from tf_style.batch_job import Pair, stem
from tf_style.config import Config
from tf_style.errors import Field, InputError
from tf_style.images import METADATA_KEY

#: A pair's outcome in this run: made now, made before (skipped), or failed (with why).
DONE, SKIPPED, FAILED = "done", "skipped", "failed"
#: How many failed pairs the summary names (the records name them all).
SUMMARY_FAILURES = 20

Answer = dict  # {"png": bytes, "losses": {term: float}} or {"error": str}


def provenance_text(config: Config, pair: Pair) -> str:
    """The record a pair's PNG carries, as a single run's picture does (tf_style.provenance)."""
    return provenance.record(config, {"content": stem(pair.content), "style": stem(pair.style)})


def with_provenance(png: bytes, text: str) -> bytes:
    """`png` with an iTXt chunk ``tf_style`` = `text` right after IHDR; the pixels' bytes are the export's own."""
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG from the model")
    # keyword, NUL, no compression (flag 0, method 0), empty language tag and translated keyword
    data = METADATA_KEY.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")
    chunk = struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def state(config: Config, pair: Pair, existing: bytes | None, skip_existing: bool) -> str | InputError:
    """"new" (make it), "skip" (this job made it before), or why the pair must fail (a file to keep)."""
    if existing is None:
        return "new"
    try:
        with Image.open(io.BytesIO(existing)) as img:
            text = img.info.get(METADATA_KEY)
        data = json.loads(text) if text else None
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        return InputError(Field("output_dir"), f": {pair.name}.png is there and was not made by tf_style; it is kept")
    expected = json.loads(provenance_text(config, pair))
    if data.get("config") != expected["config"] or data.get("inputs") != expected["inputs"]:
        return InputError(Field("output_dir"), f": {pair.name}.png was made from other settings or images; it is kept")
    return "skip" if skip_existing else "new"


def error_text(error: Exception) -> str:
    """A model error in one line: the graph's own message (which input, what is wrong), without its node names."""
    message = getattr(error, "message", None) or str(error)
    found = re.search(r"assertion failed: \[(.*?)\]\s*(\n|\[\[|$)", message, re.S)
    text = found.group(1) if found else next((line for line in message.splitlines() if line.strip()), message)
    text = re.sub(r"\s*\[\[\{\{node .*", "", text).strip()
    # A pair answered alone is index 0 of its batch: name the input, not the tensor.
    return text.replace("content_bytes[0]", "content").replace("style_bytes[0]", "style")


def stylize_isolated(
    call: Callable[[list[bytes], list[bytes]], Mapping[str, Any]],
    inputs: Sequence[tuple[bytes, bytes]],
    bad_input: tuple[type[BaseException], ...],
    on_split: Callable[[], None] = lambda: None,
) -> list[Answer]:
    """`call(contents, styles)` (serving_default: ``image_bytes`` and ``loss_<term>``, each [N]) on
    the whole batch; when it raises one of `bad_input`, each pair again alone, so that one bad image
    fails its own pair only. `on_split` is told each time a batch is split (a metric)."""
    try:
        outputs = call([c for c, _ in inputs], [s for _, s in inputs])
    except bad_input as e:
        if len(inputs) == 1:
            return [{"error": error_text(e)}]
        on_split()
        return [answer for item in inputs for answer in stylize_isolated(call, [item], bad_input, on_split)]
    losses = {k[len("loss_"):]: v for k, v in outputs.items() if k.startswith("loss_")}
    return [
        {"png": bytes(outputs["image_bytes"][i]), "losses": {k: float(v[i]) for k, v in sorted(losses.items())}}
        for i in range(len(inputs))
    ]


def record(pair: Pair, status: str, error: str | None = None, losses: Mapping[str, float] | None = None) -> bytes:
    """A pair's record (records/<name>.json): the inputs, the output's name, done/failed, losses or error."""
    data: dict[str, Any] = {"content": pair.content, "style": pair.style, "status": status}
    if status == DONE:
        data.update(output=pair.name + ".png", losses=dict(losses or {}))
    else:
        data["error"] = error
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def empty_summary() -> dict[str, Any]:
    return {DONE: 0, SKIPPED: 0, FAILED: 0, "failures": {}}


def add_to_summary(summary: dict[str, Any], outcome: tuple[str, str, str | None]) -> dict[str, Any]:
    """Counts one (name, status, error) outcome; keeps the first failures by name."""
    name, status, error = outcome
    summary[status] += 1
    if status == FAILED:
        summary["failures"][name] = error
        summary["failures"] = dict(sorted(summary["failures"].items())[:SUMMARY_FAILURES])
    return summary


def merge_summaries(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out = empty_summary()
    for s in summaries:
        for key in (DONE, SKIPPED, FAILED):
            out[key] += s[key]
        out["failures"].update(s["failures"])
    out["failures"] = dict(sorted(out["failures"].items())[:SUMMARY_FAILURES])
    return out


def summary_lines(summary: Mapping[str, Any], output_dir: str) -> list[str]:
    """The summary a finished job prints."""
    total = summary[DONE] + summary[SKIPPED] + summary[FAILED]
    lines = [f"{total} pairs: {summary[DONE]} made, {summary[SKIPPED]} skipped (made before), {summary[FAILED]} failed"]
    for name, error in summary["failures"].items():
        lines.append(f"  failed: {name}: {error}")
    if summary[FAILED] > len(summary["failures"]):
        lines.append(f"  ... and {summary[FAILED] - len(summary['failures'])} more")
    lines.append(f"pictures in {output_dir}; one record per pair in its records/ folder")
    return lines


__all__ = [
    "DONE", "FAILED", "SKIPPED", "add_to_summary", "empty_summary", "error_text", "merge_summaries", "provenance_text",
    "record", "state", "stylize_isolated", "summary_lines", "with_provenance",
]
