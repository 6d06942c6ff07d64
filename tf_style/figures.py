"""The paper's Fig. 1 and Fig. 3 as resumable experiments (the library twin of tools/paper_figures.py).

Every panel is its own image file in the output folder, written atomically when its run ends,
then the labelled sheet (figure1.png / figure3.png) is drawn from the panel files. A panel
whose file exists is not run again, so an interrupted figure resumes where it stopped. The
settings are recorded in figure<N>.json just before the first panel file is written; a rerun
with other settings into a folder holding panels of that figure is refused rather than mixing
panels made differently. A figure<N>.json without any panel beside it describes no pixels
(a run that failed before its first panel, or panels deleted by hand) and is overwritten. A
panel or sheet file without the json beside it, a json that is not a figure's record, or an
output file that is the content or style image is the user's: refused, never replaced.

All panels of a figure start from the same white noise (the seed) and, with normalize_vgg,
use one network normalised on the content and style images together. The panels and the
sheet's layout are tf_style.paper_panels.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tf_style import images, run_dirs
from tf_style.atomic import write_atomically
from tf_style.config import Config, RunOptions
from tf_style.errors import Field, InputError
from tf_style.images import check_not_an_input
from tf_style.paper_panels import PANEL_FIELDS, Panel, draw_sheet, panels_for

#: RunOptions a figure uses: TensorBoard, one run per panel (named after it).
RUN_OPTION_FIELDS: tuple[str, ...] = ("logdir", "image_every")
#: Config fields a figure cannot take, with the reason; tools/paper_figures.py offers every field
#: but these and the ones each panel sets (paper_panels.PANEL_FIELDS).
UNSUPPORTED_FIELDS: dict[str, str] = {
    "init": "every panel starts from white noise, as the paper's did",
    "style_masks": "every panel has one style image, everywhere",
    "style_blend_weights": "a figure has one style image, and its content panels none",
}


@dataclass(frozen=True)
class Inputs:
    """A figure's two images (paths) and the folder its panels go to."""

    content: str
    style: str
    output_dir: str


def callbacks_for_panel(config: Config, panel: Panel) -> list:
    """Extra loop callbacks for one panel's run: the one place to attach per-panel hooks.

    TensorBoard needs nothing here: with a logdir, `make_figure` gives each panel its own logger
    with run_name = the panel's key, so every panel is one TensorBoard run
    (``<logdir>/fig3_B_1e-4``) and its curves can be compared side by side.
    """
    return []


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recorded_settings(config: Config, figure: int, inputs: Inputs) -> dict[str, Any]:
    """What a figure's panels depend on, as written to figure<N>.json: the base Config (defaults
    written out, panel fields left out), the figure, and the inputs and weights file by their bytes."""
    d = {k: v for k, v in config.resolved().to_dict().items() if k not in PANEL_FIELDS}
    d["figure"] = figure
    d["content_sha256"] = _file_digest(inputs.content)
    d["style_sha256"] = _file_digest(inputs.style)
    if config.weights not in ("imagenet", "random") and os.path.isfile(config.weights):
        d["weights_sha256"] = _file_digest(config.weights)
    return d


def _settings_path(inputs: Inputs, figure: int) -> str:
    return os.path.join(inputs.output_dir, f"figure{figure}.json")


def _read_record(path: str, figure: int) -> dict[str, Any]:
    """figure<N>.json as this module wrote it; a file that is not one is the user's, and is kept."""
    try:
        with open(path) as f:
            previous = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(Field("output_dir"), f": cannot read {path} ({e}); move or delete it to start the figure afresh") from None
    if not isinstance(previous, dict) or previous.get("figure") != figure:
        raise InputError(Field("output_dir"), f": {path} is not a record of Fig. {figure}'s settings written by "
                         "tf_style; it is kept (move it, or choose another ", Field("output_dir"), ")")
    return previous


def _check_recorded(current: dict[str, Any], figure: int, inputs: Inputs, panels: Sequence[Panel]) -> bool:
    """Whether a panel of the figure already exists in the folder; refuses other settings then.

    Refuses settings other than the recorded ones only when a panel exists: the json alone
    describes no pixels (a run that failed before its first panel leaves none, and older
    versions wrote the json before any work), so it must not block a corrected rerun. Panels or a
    sheet without the json were not made here (it is written before the first panel): they are
    the user's files, and refused rather than skipped as finished or replaced.
    """
    path = _settings_path(inputs, figure)
    ours = [os.path.join(inputs.output_dir, name) for name in [p.filename for p in panels] + [f"figure{figure}.png"]]
    for output in ours + [path]:
        check_not_an_input(output, {"content": inputs.content, "style": inputs.style}, Field("output_dir"),
                           instead="choose another folder")
    has_panels = any(os.path.lexists(p) for p in ours[:-1])
    if not os.path.lexists(path):
        found = [p for p in ours if os.path.lexists(p)]
        if found:
            raise InputError(Field("output_dir"), f": {found[0]} is there without the figure's record ({path}), so "
                             "tf_style did not make it; it is kept (move it, or choose another ", Field("output_dir"), ")")
        return False
    previous = _read_record(path, figure)
    if has_panels:
        differing = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if differing:
            raise InputError(
                Field("output_dir"), f": {inputs.output_dir} holds Fig. {figure} panels made with other settings "
                f"({', '.join(differing)} differ, see {path}); use another ", Field("output_dir"),
                " or delete those files",
            )
    return has_panels


def _record(inputs: Inputs, figure: int, current: dict[str, Any]) -> None:
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    write_atomically(_settings_path(inputs, figure), lambda f: f.write(text.encode("utf-8")))


def make_figure(
    figure: int,
    config: Config,
    inputs: Inputs,
    *,
    options: RunOptions | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Runs the panels of Fig. `figure` that are missing and draws the sheet.

    Args:
      figure: 1 or 3.
      config: the settings every panel shares (image_size, num_steps, weights, seed, optimizer,
        normalize_vgg, ...); each panel sets the PANEL_FIELDS itself.
      inputs: the photograph, the artwork and the output folder.
      options: RunOptions; with a logdir every panel is one TensorBoard run named after it.
      log: called with one line per panel.

    Returns file name -> path for every panel and the sheet.
    """
    panels = panels_for(figure)
    options = options if options is not None else RunOptions()
    for name, reason in UNSUPPORTED_FIELDS.items():
        if getattr(config, name) != getattr(Config(), name):
            raise InputError(Field(name), f" cannot be set for a figure ({reason}); got {getattr(config, name)!r}")
    content_raw = images.load_image(inputs.content, Field("content"))
    style_raw = images.load_image(inputs.style, Field("style"))
    run_dirs.make_folder(inputs.output_dir, Field("output_dir"))
    current = recorded_settings(config, figure, inputs)
    # With panels present the json matches (checked) or is missing: (re)write it now. Otherwise
    # it is written just before the first panel file, so that a run failing before any panel
    # (missing weights, no network for the ImageNet download) leaves no record that would refuse
    # the corrected rerun, and no panel ever exists without its record.
    recorded = _check_recorded(current, figure, inputs, panels)
    if recorded:
        _record(inputs, figure, current)

    paths = {p.filename: os.path.join(inputs.output_dir, p.filename) for p in panels}
    todo = [p for p in panels if not os.path.exists(paths[p.filename])]
    for n, panel in enumerate(panels, 1):
        if panel not in todo:
            log(f"[{n}/{len(panels)}] {panel.key}: exists, skipped")
    if todo:
        # TensorFlow loads only when there is something to run: redrawing a finished sheet is instant.
        from tf_style import api

        content, style = api.prepare_images(config, content_raw, style_raw)
        for panel in todo:
            n = panels.index(panel) + 1
            started = time.perf_counter()
            result = _run_panel(api, config, options, panel, content, style, inputs)
            if not recorded:
                _record(inputs, figure, current)
                recorded = True
            images.save_image(result.image, paths[panel.filename])
            first = result.history[0]["total"] if result.history else float("nan")
            last = result.final_terms.get("total", float("nan"))
            log(
                f"[{n}/{len(panels)}] {panel.key}: {result.config.num_steps} steps in "
                f"{time.perf_counter() - started:.1f} s, loss {first:.4g} -> {last:.4g}"
            )

    sheet_path = os.path.join(inputs.output_dir, f"figure{figure}.png")
    images.save_image(draw_sheet(figure, config, content_raw, style_raw, paths), sheet_path)
    log(f"wrote {sheet_path}")
    paths[os.path.basename(sheet_path)] = sheet_path
    return paths


def _run_panel(api, config: Config, options: RunOptions, panel: Panel, content, style, inputs: Inputs):
    """One panel's run. Textures get the photo's size, so the sheet's cells agree; every panel
    shares one network, normalised (if asked) on both images together."""
    panel_config = config.replace(**dict(panel.changes), output_size=None if panel.uses_content else content.shape[:2])
    # No output= here: api.run saves the unfinished image on Ctrl-C, and a panel file must only
    # ever hold a finished panel, or the rerun would skip it.
    return api.run_with_options(
        panel_config,
        options.replace(run_name=panel.key),
        content if panel.uses_content else None,
        style if panel.uses_style else None,
        callbacks=callbacks_for_panel(panel_config, panel),
        normalization_images=[content, style],
        content_name=run_dirs.image_name(inputs.content) if panel.uses_content else None,
        style_name=run_dirs.image_name(inputs.style) if panel.uses_style else None,
    )


__all__ = ["Inputs", "RUN_OPTION_FIELDS", "UNSUPPORTED_FIELDS", "callbacks_for_panel", "make_figure", "recorded_settings"]
