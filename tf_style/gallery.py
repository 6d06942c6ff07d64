"""The artist controls, shown: one labelled sheet per control (the library twin of
tools/controls_gallery.py).

Each sheet has a row of inputs (the photo, the artworks, the masks) and a row of results, each
captioned with the flags that made it; every result is also its own PNG with its settings in it
(tf_style.provenance), so `tf-style --config_from=<panel>.png` reruns any of them. The panels of a
sheet differ in one control only and share everything else (seed included), so what changes
between them is that control's doing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from PIL import Image, PngImagePlugin

from tf_style import images, run_dirs
from tf_style.atomic import write_atomically
from tf_style.config import Config, RunOptions
from tf_style.errors import Field, InputError
from tf_style.kept_files import check_replaceable, mark, written_by_tf_style
from tf_style.sheets import contact_sheet


@dataclass(frozen=True)
class Panel:
    """One result: its caption (the flags that differ) and its Config changes; `styles` picks the
    artworks by index (0: the first --style, 1: the second)."""

    caption: str
    changes: dict[str, Any] = field(default_factory=dict)
    styles: tuple[int, ...] = (0,)
    masks: bool = False


@dataclass(frozen=True)
class Sheet:
    """One control's sheet; its title names settings as ``{field}``, written by the caller's
    `name` (the command line's flags, say)."""

    name: str
    title: str
    panels: tuple[Panel, ...]

    def titled(self, name: Callable[[str], str]) -> str:
        return self.title.format_map({f: name(f) for f in re.findall(r"{(\w+)}", self.title)})


SHEETS: tuple[Sheet, ...] = (
    Sheet("styles", "Several styles: {style}=A,B {style_blend_weights}", (
        Panel("weights 1,0", {"style_blend_weights": (1.0, 0.0)}, (0, 1)),
        Panel("weights 1,1", {"style_blend_weights": (1.0, 1.0)}, (0, 1)),
        Panel("weights 0,1", {"style_blend_weights": (0.0, 1.0)}, (0, 1)),
    )),
    Sheet("regions", "Regions: {style}=A,B {style_masks}=left,right", (
        Panel("A left, B right", {}, (0, 1), masks=True),
        Panel("B left, A right", {}, (1, 0), masks=True),
        Panel("no masks (1,1 blend)", {}, (0, 1)),
    )),
    Sheet("colour", "Colour: {preserve_colors} (style A)", (
        Panel("none", {"preserve_colors": "none"}),
        Panel("luminance", {"preserve_colors": "luminance"}),
        Panel("histogram", {"preserve_colors": "histogram"}),
    )),
    Sheet("scale", "Brush size: {style_scale} (style A)", (
        Panel("style_scale 0.25", {"style_scale": 0.25}),
        Panel("style_scale 1", {"style_scale": 1.0}),
        Panel("style_scale 2", {"style_scale": 2.0}),
    )),
)
SHEET_NAMES: tuple[str, ...] = tuple(s.name for s in SHEETS)


def half_masks(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """White on the left half, and on the right half, of an image of (h, w) `shape` (uint8 grey)."""
    h, w = int(shape[0]), int(shape[1])
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    return left, 255 - left


def framed(mask: np.ndarray) -> np.ndarray:
    """A grey mask as RGB with a grey frame, so that its white part shows on the sheet's white."""
    rgb = np.repeat(mask[..., None], 3, axis=-1).astype(np.float32)
    rgb[[0, -1], :] = rgb[:, [0, -1]] = 128.0
    return rgb


def mask_paths(folder: str) -> tuple[str, str]:
    """Where the two half masks go: `folder`'s `masks/` subfolder."""
    return os.path.join(folder, "masks", "left.png"), os.path.join(folder, "masks", "right.png")


def write_masks(folder: str, shape: Sequence[int]) -> tuple[str, str]:
    """The two half masks as PNGs (marked as tf_style's drawings) in `mask_paths(folder)`; their paths."""
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    paths = mask_paths(folder)
    for mask, path in zip(half_masks(shape), paths):
        images.save_image(np.repeat(mask[..., None], 3, axis=-1), path, Field("output_dir"), metadata=mark("mask"))
    return paths


def sheet_files(sheet: Sheet, output_dir: str) -> list[str]:
    """Every file `make_sheet` writes for `sheet`: the masks, its panels and the sheet itself."""
    folder = os.path.join(output_dir, sheet.name)
    return [*mask_paths(output_dir), *(os.path.join(folder, f"{k}.png") for k in range(1, len(sheet.panels) + 1)),
            os.path.join(output_dir, f"controls_{sheet.name}.png")]


def written_here(sheet: Sheet, output_dir: str) -> Callable[[str], bool]:
    """Whether a file of `sheet_files` is the gallery's: it carries tf_style's mark, or an earlier
    tf_style wrote it before masks and sheets were marked (a mask by its pixels, exactly a half mask;
    the sheet when every panel beside it carries the settings that made it)."""
    masks, sheet_path = mask_paths(output_dir), sheet_files(sheet, output_dir)[-1]

    def ours(path: str) -> bool:
        if written_by_tf_style(path):
            return True
        if path in masks and os.path.isfile(path):
            try:
                pixels = images.load_image(path, Field("output_dir"))
            except InputError:
                return False
            expected = half_masks(pixels.shape[:2])[masks.index(path)]
            return bool(np.array_equal(pixels, np.repeat(expected[..., None], 3, axis=-1)))
        return path == sheet_path and all(written_by_tf_style(p) for p in sheet_files(sheet, output_dir)[2:-1])

    return ours


def panel_config(base: Config, panel: Panel, mask_paths: Sequence[str]) -> Config:
    """The panel's settings: the base with its changes (and the masks, in its styles' order)."""
    changes = dict(panel.changes)
    if panel.masks:
        changes["style_masks"] = tuple(mask_paths)
    return base.replace(**changes)


def make_sheet(
    sheet: Sheet,
    base: Config,
    content: str,
    styles: Sequence[str],
    output_dir: str,
    run: Callable[..., np.ndarray] | None = None,
    colours: int | None = None,
    name: Callable[[str], str] = str,
) -> str:
    """Runs `sheet`'s panels (each written as ``output_dir/<sheet>/<k>.png``) and draws the sheet
    ``output_dir/controls_<sheet>.png`` (with a palette of `colours` colours if given: smaller
    files); returns its path. `run(config, content, styles, output)` makes one panel (default:
    tf_style.api.run); `name(field)` writes a setting's name in the title."""
    if run is None:
        from tf_style import api  # TensorFlow loads here, once the settings are checked

        # The panels' files were checked above (only the gallery's own are replaced): a rerun with other settings goes on.
        replace = RunOptions(overwrite=True)
        run = lambda c, x, s, out: api.run(c, x, s if len(s) > 1 else s[0], output=out, options=replace).image  # noqa: E731
    photo = images.load_image(content, Field("content"))
    artworks = [images.load_image(s, Field("style")) for s in styles]
    check_replaceable(sheet_files(sheet, output_dir), {"content": content, "style": list(styles)},
                      ours=written_here(sheet, output_dir))
    shown = images.resize_longest(photo, base.image_size)
    mask_paths = write_masks(output_dir, shown.shape[:2])
    folder = os.path.join(output_dir, sheet.name)
    os.makedirs(folder, exist_ok=True)
    results, captions = [], []
    for k, panel in enumerate(sheet.panels, 1):
        config = panel_config(base, panel, mask_paths)
        results.append(run(config, content, [styles[i] for i in panel.styles], os.path.join(folder, f"{k}.png")))
        captions.append(panel.caption)
    used = sorted({i for p in sheet.panels for i in p.styles})
    inputs = [shown] + [images.resize_longest(artworks[i], base.image_size) for i in used]
    labels = ["photo"] + [f"style {'AB'[i]}" for i in used]
    if any(p.masks for p in sheet.panels):
        inputs += [framed(m) for m in half_masks(shown.shape[:2])]
        labels += ["mask: left", "mask: right"]
    title = f"{sheet.titled(name)}; VGG19 weights: {weights_label(base)}, {base.num_steps} steps, {base.image_size} px"
    drawn = contact_sheet([inputs, results], captions=[labels, captions], title=title)
    path = os.path.join(output_dir, f"controls_{sheet.name}.png")
    picture = Image.fromarray(drawn)
    if colours is not None:
        picture = picture.quantize(colours, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(images.METADATA_KEY, mark("contact sheet"))
    write_atomically(path, lambda f: picture.save(f, format="PNG", optimize=True, pnginfo=info))
    return path


def weights_label(config: Config) -> str:
    """How the sheet names the network: random (seeded) weights are not the paper's."""
    if config.weights == "random":
        return f"random (seed {config.seed}), not ImageNet"
    return config.weights


def make_gallery(
    base: Config,
    content: str,
    styles: Sequence[str],
    output_dir: str,
    only: Sequence[str] | None = None,
    colours: int | None = None,
    name: Callable[[str], str] = str,
) -> list[str]:
    """Every sheet of SHEETS (or those named in `only`) into `output_dir`; their paths (arguments
    as `make_sheet`'s)."""
    if len(styles) != 2:
        raise InputError(Field("style"), f" needs two artworks (A,B) for the gallery; got {len(styles)}")
    unknown = sorted(set(only or ()) - set(SHEET_NAMES))
    if unknown:
        raise InputError(Field("sheets"), f": unknown sheet(s) {', '.join(unknown)}; expected some of {', '.join(SHEET_NAMES)}")
    run_dirs.check_folder(output_dir, Field("output_dir"))  # made by the first sheet, once all is checked
    chosen = [s for s in SHEETS if not only or s.name in only]
    for s in chosen:  # every sheet's files and settings, before the first sheet's work
        check_replaceable(sheet_files(s, output_dir), {"content": content, "style": list(styles)},
                          ours=written_here(s, output_dir))
        for panel in s.panels:
            try:
                panel_config(base, panel, mask_paths(output_dir))
            except InputError as e:  # its field is the panel's, not a flag of the tool: said as the caption says it
                raise InputError(Field("sheets"), f": the {s.name} sheet's panel '{panel.caption}' cannot run with "
                                 f"these settings ({''.join(map(str, e.parts))}); leave the sheet out, or change them") from None
    return [make_sheet(s, base, content, styles, output_dir, colours=colours, name=name) for s in chosen]


__all__ = ["Panel", "SHEETS", "SHEET_NAMES", "Sheet", "half_masks", "make_gallery", "make_sheet", "panel_config",
           "sheet_files", "weights_label", "write_masks"]
