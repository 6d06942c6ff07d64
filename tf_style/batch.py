"""Many photos in one style: `--content` a folder or a glob, `--output` a folder, one picture each.

The library twin of tf-style's folder mode. Every photo is one ordinary `api.run` (coarse to
fine, checkpoints, provenance and all), so a batch inherits everything a single run promises:
- a finished picture made with the same settings and input names is skipped, so a rerun
  continues where the last one stopped (the provenance in the PNG says whether it is finished,
  and from what);
- a photo whose picture was interrupted resumes from its checkpoint;
- a finished picture made with other settings or images, or a file tf_style did not write, is
  never overwritten (unless RunOptions.overwrite says so): that photo fails, with the reason, and the
  others go on;
- one photo that cannot be read or diverges is reported, and the others go on;
- Ctrl-C or SIGTERM stops the whole batch after the current step, as for one run.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tf_style import images, provenance, run_dirs
from tf_style.config import Config, RunOptions
from tf_style.errors import Diverged, Field, InputError, OutOfMemory
from tf_style.stopping import StopSwitch

# tf_style.api (and with it TensorFlow) loads in run_folder only, so that the command line can
# list and check the photos before TensorFlow starts.

#: The files a folder of photos is read for (what `images.load_image` decodes), by extension.
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Outcome:
    """What became of one photo: "done", "skipped" (finished before) or "failed" (with the reason)."""

    content: str
    output: str
    status: str
    message: str = ""


def is_many(spec: str) -> bool:
    """Whether a --content value names several photos: a folder, or a glob pattern (a file whose
    name holds ``[`` or ``*`` is one photo)."""
    return not os.path.isfile(spec) and (os.path.isdir(spec) or any(c in spec for c in "*?["))


def photos(spec: str) -> list[str]:
    """The photos a folder (its image files, not its subfolders) or a glob names, sorted."""
    if os.path.isdir(spec):
        found = [os.path.join(spec, n) for n in os.listdir(spec)]
        found = [p for p in found if os.path.isfile(p) and os.path.splitext(p)[1].lower() in PHOTO_EXTENSIONS]
    else:
        found = [p for p in glob.glob(spec) if os.path.isfile(p) and os.path.splitext(p)[1].lower() in PHOTO_EXTENSIONS]
    found = [p for p in found if ".unfinished." not in os.path.basename(p)]  # an interrupted run's image, not a photo
    if not found:
        raise InputError(Field("content"), f": no images in {spec} (expected {', '.join(PHOTO_EXTENSIONS)} files)")
    return sorted(found)


def check_output_folder(spec: str, outputs: Sequence[str]) -> None:
    """Refuses outputs that `spec` (the photos' folder or glob) would list as photos: the next run, the rerun that
    continues a batch, would take the pictures for photos (and refuse ``cat.png`` beside ``cat.jpg``)."""
    pattern = None if os.path.isdir(spec) else os.path.abspath(spec).split(os.sep)  # glob's "*" stops at a "/"
    for output in outputs:
        if pattern is None:
            listed = os.path.realpath(os.path.dirname(output) or ".") == os.path.realpath(spec)
        else:
            parts = os.path.abspath(output).split(os.sep)
            listed = len(parts) == len(pattern) and all(map(fnmatch.fnmatchcase, parts, pattern))
        if listed:
            raise InputError(Field("output"), f": {output} would be one of the photos ", Field("content"), f"={spec} "
                             "lists, and a rerun would take it for one; choose another folder")


def outputs_for(contents: Sequence[str], folder: str, extension: str = ".png") -> list[str]:
    """One output per photo in `folder`, named after it (``cat.jpg`` -> ``folder/cat.png``)."""
    if os.path.splitext(folder)[1].lower() in images.SAVE_FORMATS or os.path.isfile(folder):
        raise InputError(Field("output"), f": with several photos, {folder} must be a folder (one picture per photo)")
    outputs = [os.path.join(folder, os.path.splitext(os.path.basename(p))[0] + extension) for p in contents]
    clashes = sorted({o for o in outputs if outputs.count(o) > 1})
    if clashes:
        raise InputError(Field("content"), f": several photos would make {', '.join(clashes)} (same name, other "
                         "extension); rename one")
    return outputs


def checkpoint_folder(options: RunOptions, output: str) -> str:
    """Where one photo's checkpoints go: beside its output, or its own subfolder of checkpoint_dir."""
    if options.checkpoint_dir:
        return os.path.join(options.checkpoint_dir, os.path.splitext(os.path.basename(output))[0])
    return os.fspath(output) + ".checkpoints"  # tf_style.checkpoints.default_folder


def status(config: Config, output: str, inputs: dict[str, str], options: RunOptions = RunOptions()) -> str | InputError:
    """"new", "skip" (finished from these settings and inputs), "resume" (a checkpoint is waiting),
    or why the photo must fail (a picture there that this batch may not replace)."""
    waiting = checkpoint_folder(options, output)
    if os.path.isdir(waiting) and os.listdir(waiting):
        return "resume"
    if not os.path.exists(output):
        return "new"
    try:
        record = provenance.read(output, Field("output"))
    except InputError:
        if options.overwrite:
            return "new"
        return InputError(Field("output"), f": {output} is there and was not made by tf_style; it is kept (write to "
                          "another folder, or add ", Field("overwrite"), ")")
    if not record.get("finished"):
        return "new"  # an unfinished picture of an interrupted run without a checkpoint: it is made again
    from tf_style import endings  # TensorFlow loads with it: not before the folder's photos are checked

    if endings.same_run(record, config, {k: v for k, v in inputs.items() if v}, resumable=False):  # defaults filled
        return "skip"
    if options.overwrite:  # a finished picture of other settings, replaced as asked
        return "new"
    return InputError(Field("output"), f": {output} is a finished picture made with other settings or images; it is "
                      "kept (write to another folder, or add ", Field("overwrite"), ")")


def run_folder(
    config: Config,
    options: RunOptions,
    contents: Sequence[str],
    outputs: Sequence[str],
    style: Any,
    *,
    stop: StopSwitch | None = None,
    style_name: str | None = None,
    report: Callable[[str], None] = print,
    callbacks_for: Callable[[str], list] = lambda output: [],
    render: Callable[[Exception], str] = str,
) -> list[Outcome]:
    """Makes a picture of each photo in `style`; returns each photo's outcome (see the module doc).

    `callbacks_for(output)` gives each run its callbacks (e.g. a TensorBoard logger per photo);
    `render` words a photo's error (the command line names fields as flags). Interrupted (a
    signal, Ctrl-C) propagates: the batch stops there.
    """
    from tf_style import api

    outcomes = []
    for k, (content, output) in enumerate(zip(contents, outputs), 1):
        names = {"content": run_dirs.image_name(content), "style": style_name}
        state = status(config, output, names, options)
        prefix = f"[{k}/{len(contents)}] {content} -> {output}"
        if state == "skip":
            report(f"{prefix}: finished before, skipped")
            outcomes.append(Outcome(content, output, "skipped"))
            continue
        if isinstance(state, InputError):
            report(f"{prefix}: failed: {render(state)}")
            outcomes.append(Outcome(content, output, "failed", render(state)))
            continue
        report(f"{prefix}" + (": resuming" if state == "resume" else ""))
        try:
            photo = images.load_image(content, Field("content"))
            mine = options.replace(resume=state == "resume", checkpoint_dir=checkpoint_folder(options, output))
            api.run(config, photo, style, options=mine, output=output, progress=True, callbacks=callbacks_for(output),
                    content_name=names["content"], style_name=style_name, stop=stop)
        except (InputError, Diverged, OutOfMemory) as e:
            message = render(e)
            report(f"    failed: {message}")
            outcomes.append(Outcome(content, output, "failed", message))
            continue
        outcomes.append(Outcome(content, output, "done"))
    return outcomes


__all__ = [
    "Outcome", "PHOTO_EXTENSIONS", "check_output_folder", "checkpoint_folder", "is_many", "outputs_for", "photos",
    "run_folder", "status",
]
