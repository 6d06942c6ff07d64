"""Many photos × many styles through a SavedModel: the job's settings, its pairs and its record.

The Beam-free half of tools/stylize_batch.py (tf_style.beam_pipeline runs it). Paths go through
`tf.io.gfile`, so a folder or glob may be local or ``gs://`` (TensorFlow reads Cloud Storage
itself; s3 or HDFS need tensorflow-io, or a local copy). A job's state is its output folder:
- ``<content>__<style>.png``, one per pair (the export's PNG with tf_style's provenance chunk);
- ``records/<content>__<style>.json``, what became of the pair ("done" with the loss terms, or
  "failed" with why), written before the PNG, so a PNG never lacks its record;
- ``tf_style_job.json``, the model and pairing the folder was made with: a rerun with another
  model or pairing is refused, a rerun with the same ones skips the finished pairs;
- ``summary.json``, the counts of the last run.
Nothing in a record depends on the clock, the machine or the output folder's path, so an
interrupted job finished by a rerun writes the very bytes an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from typing import Any, Sequence

from tf_style import run_dirs
from tf_style.batch import PHOTO_EXTENSIONS
from tf_style.errors import Field, InputError
from tf_style.export import CONFIG_ASSET, join, served_folder

#: How photos meet styles: every photo with every style, or each photo with the next style in turn.
PAIRINGS = ("cross", "cycle")
JOB_RECORD = "tf_style_job.json"
RECORDS = "records"
SUMMARY = "summary.json"
#: Files are written under this prefix beside their final name (tf_style.atomic's too) and renamed
#: into place; a rerun removes the ones a killed worker left in the job's folders.
TMP_PREFIX = ".tmp-"


def _gfile() -> Any:
    import tensorflow as tf  # here, so that listing the flags stays fast

    return tf.io.gfile


@dataclass(frozen=True)
class Pair:
    """One picture to make: its photo, its style, and its output's name (no extension)."""

    name: str
    content: str
    style: str


@dataclass(frozen=True)
class JobSettings:
    """A batch job: a model version folder, the photos and styles, how they pair, where pictures go.

    `batch_size` pairs go to the model in one call (Beam may send fewer); with `skip_existing`
    a pair whose picture this job already made is not made again.
    """

    model_dir: str
    contents: tuple[str, ...]
    styles: tuple[str, ...]
    output_dir: str
    pairs: str = "cross"
    batch_size: int = 4
    skip_existing: bool = True

    def __post_init__(self) -> None:
        if self.pairs not in PAIRINGS:
            raise InputError(Field("pairs"), f" must be one of {', '.join(PAIRINGS)}; got {self.pairs!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(Field("batch_size"), f" must be an integer >= 1; got {self.batch_size!r}")
        for field, values in (("content", self.contents), ("style", self.styles)):
            if not values:
                raise InputError(Field(field), ": no images")
        if not self.output_dir:
            raise InputError(Field("output_dir"), " is required (the folder the pictures and records go to)")

    def pair_list(self) -> list[Pair]:
        return make_pairs(self.contents, self.styles, self.pairs)

    def output(self, pair: Pair) -> str:
        return join(self.output_dir, pair.name + ".png")

    def record(self, pair: Pair) -> str:
        return join(join(self.output_dir, RECORDS), pair.name + ".json")


def list_images(spec: str, field: str) -> list[str]:
    """The images a folder (its files with an image extension, not subfolders) or a glob names, sorted."""
    gfile = _gfile()
    try:
        if gfile.isdir(spec):
            found = [join(spec, n) for n in gfile.listdir(spec) if not n.endswith("/")]
        else:
            found = gfile.glob(spec)
    except Exception as e:  # gfile's errors differ by filesystem (NotFound, Unimplemented for s3://, ...)
        raise InputError(Field(field), f": cannot list {spec} ({type(e).__name__}: {e})") from None
    found = [p for p in found if os.path.splitext(p)[1].lower() in PHOTO_EXTENSIONS]
    if "://" not in spec:  # a folder named like a photo is not one (gs:// lists folders with a '/')
        found = [p for p in found if os.path.isfile(p)]
    if not found:
        raise InputError(Field(field), f": no images in {spec} (expected {', '.join(PHOTO_EXTENSIONS)} files)")
    return sorted(found)


def stem(path: str) -> str:
    return os.path.splitext(posixpath.basename(path))[0]


def make_pairs(contents: Sequence[str], styles: Sequence[str], pairing: str) -> list[Pair]:
    """cross: every photo with every style; cycle: photo i with style i mod len(styles) (one each).

    Refuses names that would make the same output twice (``a.jpg`` and ``a.png``), before any work.
    """
    for field, paths in (("content", contents), ("style", styles)):
        seen: dict[str, str] = {}
        for p in paths:
            if stem(p) in seen:
                raise InputError(Field(field), f": {seen[stem(p)]} and {p} have the same name; their pictures would "
                                 "clash (rename one)")
            seen[stem(p)] = p
    if pairing == "cross":
        combos = [(c, s) for c in contents for s in styles]
    else:
        combos = [(c, styles[i % len(styles)]) for i, c in enumerate(contents)]
    return [Pair(f"{stem(c)}__{stem(s)}", c, s) for c, s in combos]


def resolve_model_dir(path: str) -> str:
    """A version folder as given, or a base folder's highest integer version, by TensorFlow
    Serving's rule (`export.served_folder`: that version must be complete)."""
    return served_folder(path, "model_dir")[0].rstrip("/")


def model_identity(version_dir: str) -> dict[str, Any]:
    """What makes a model this model: its tf_style config asset and its SavedModel fingerprint."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(join(version_dir, CONFIG_ASSET), "rb") as f:
            asset = json.loads(f.read())
        config = asset["config"]
    except Exception as e:
        raise InputError(Field("model_dir"), f": {version_dir} is not a tf_style export (its {CONFIG_ASSET}: "
                         f"{type(e).__name__}: {e})") from None
    fingerprint = tf.saved_model.experimental.read_fingerprint(version_dir)
    return {"config": config, "limits": asset.get("limits"), "saved_model_checksum": str(fingerprint.saved_model_checksum)}


def job_record(settings: JobSettings, identity: dict[str, Any]) -> dict[str, Any]:
    """The folder's job record: the model and the pairing (the inputs may grow between runs)."""
    return {"tf_style_job": 1, "model": identity, "pairs": settings.pairs}


def claim_output_dir(settings: JobSettings, record: dict[str, Any]) -> None:
    """Makes `output_dir` this job's, or refuses: a folder of another job (model, pairing), or a
    folder with files but no job record (they are the user's: nothing of theirs is overwritten).
    Removes temporary files a killed worker left behind (one job per folder at a time)."""
    if "://" not in settings.output_dir:  # a file in the way is one line, not the filesystem's traceback
        run_dirs.check_folder(settings.output_dir, Field("output_dir"))
    gfile = _gfile()
    path = join(settings.output_dir, JOB_RECORD)
    if gfile.exists(path):
        try:
            with gfile.GFile(path, "rb") as f:
                old = json.loads(f.read())
        except ValueError:
            old = None
        if not isinstance(old, dict) or old.get("tf_style_job") != 1:
            raise InputError(Field("output_dir"), f": {path} is not a tf_style job record; it is kept")
        for key, what in (("model", "another model"), ("pairs", "another pairing")):
            if old.get(key) != record[key]:
                raise InputError(Field("output_dir"), f": {settings.output_dir} holds a job made with {what} "
                                 f"({key}: {old.get(key) if key == 'pairs' else 'differs'}); use another folder")
    elif gfile.exists(settings.output_dir) and gfile.listdir(settings.output_dir):
        raise InputError(Field("output_dir"), f": {settings.output_dir} has files but no {JOB_RECORD}; they are "
                         "kept (use an empty or new folder)")
    for folder in (settings.output_dir, join(settings.output_dir, RECORDS)):
        gfile.makedirs(folder)
        for name in gfile.listdir(folder):
            if name.startswith(TMP_PREFIX):
                gfile.remove(join(folder, name))
    if not gfile.exists(path):
        write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to a temporary name beside `path` and renames it into place: a reader (or a
    rerun's skip check) sees the whole file or none. Locally an atomic rename (tf_style.atomic); on
    gs:// the rename is a server-side copy, and an object appears only once it is whole."""
    if "://" not in path:
        from tf_style.atomic import write_atomically

        write_atomically(path, lambda f: f.write(data))
        return
    gfile = _gfile()
    tmp = join(posixpath.dirname(path), TMP_PREFIX + posixpath.basename(path))
    with gfile.GFile(tmp, "wb") as f:
        f.write(data)
    gfile.rename(tmp, path, overwrite=True)


def read_bytes(path: str) -> bytes:
    with _gfile().GFile(path, "rb") as f:
        return f.read()


__all__ = [
    "JOB_RECORD", "PAIRINGS", "RECORDS", "SUMMARY", "TMP_PREFIX", "JobSettings", "Pair", "claim_output_dir", "job_record",
    "join", "list_images", "make_pairs", "model_identity", "read_bytes", "resolve_model_dir", "stem", "write_bytes",
]
