"""The paper's Fig. 1 and Fig. 3 as resumable experiments (driven by tools/paper_figures.py).

Fig. 1: content reconstructions from conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (a-e) and style
reconstructions (textures) from the growing layer sets conv1_1 / ..conv2_1 / ... / ..conv5_1 (a-e).
Fig. 3: photo + artwork with the style matched on the layer sets A-E (rows) and
alpha/beta = 1e-5, 1e-4, 1e-3, 1e-2 (columns), content on conv4_2.

Every panel is its own image file in the output folder, written atomically when its run ends,
then the labelled sheet (figure1.png / figure3.png) is drawn from the panel files. A panel
whose file exists is not run again, so an interrupted figure resumes where it stopped. The
settings are recorded in figure<N>.json just before the first panel file is written; a rerun
with other settings into a folder holding panels of that figure is refused rather than mixing
panels made differently. A figure<N>.json without any panel beside it describes no pixels
(a run that failed before its first panel, or panels deleted by hand) and is overwritten.

All panels of a figure start from the same white noise (the seed) and, with normalize_vgg,
use one network normalised on the content and style images together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from tf_style import images
from tf_style.atomic import write_atomically
from tf_style.config import PAPER_STYLE_LAYERS, Config
from tf_style.errors import InputError

FIGURES = (1, 3)
#: Fig. 1 content reconstructions a-e.
FIG1_CONTENT_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: Fig. 3 columns: alpha/beta.
FIG3_RATIOS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
FIG3_CONTENT_LAYER = "conv4_2"


@dataclass(frozen=True)
class Settings:
    """What decides a figure's pixels (the tool's flags)."""

    content: str
    style: str
    output_dir: str
    weights: str = "imagenet"
    image_size: int = 512
    num_steps: int = 500
    seed: int = 0
    optimizer: str = "adam"
    learning_rate: float | None = None
    normalize_vgg: bool = False
    pooling: str = "avg"
    logdir: str | None = None  # TensorBoard: one run folder per panel under it

    def base_config(self) -> Config:
        """The settings shared by every panel, validated (a bad value fails before any work)."""
        return Config(
            image_size=self.image_size,
            num_steps=self.num_steps,
            seed=self.seed,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            weights=self.weights,
            normalize_vgg=self.normalize_vgg,
            pooling=self.pooling,
            print_every=0,
        )


@dataclass(frozen=True)
class Panel:
    """One image of a figure: its file name, its place in the sheet and its run's settings."""

    key: str  # file stem, e.g. "fig1_content_a_conv1_1"
    row: int
    column: int
    caption: str
    uses_content: bool
    uses_style: bool
    changes: tuple[tuple[str, Any], ...]  # Config fields set for this panel

    @property
    def filename(self) -> str:
        return self.key + ".png"


def layer_set(k: int) -> tuple[str, ...]:
    """The paper's style layer sets: conv1_1 up to conv{k}_1."""
    return PAPER_STYLE_LAYERS[:k]


def _span(layers: Sequence[str]) -> str:
    return layers[0] if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"


def ratio_label(ratio: float) -> str:
    """1e-05 -> "1e-5": the paper's way of writing alpha/beta."""
    mantissa, exponent = f"{ratio:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def figure1_panels() -> list[Panel]:
    panels = []
    for j, layer in enumerate(FIG1_CONTENT_LAYERS):
        letter = "abcde"[j]
        panels.append(
            Panel(
                key=f"fig1_content_{letter}_{layer}",
                row=0,
                column=j + 1,
                caption=f"{letter}: {layer}",
                uses_content=True,
                uses_style=False,
                changes=(("content_layers", (layer,)), ("style_layers", ())),
            )
        )
    for j in range(5):
        letter = "abcde"[j]
        layers = layer_set(j + 1)
        panels.append(
            Panel(
                key=f"fig1_style_{letter}_{_span(layers)}",
                row=1,
                column=j + 1,
                caption=f"{letter}: {_span(layers)}",
                uses_content=False,
                uses_style=True,
                changes=(("content_layers", ()), ("style_layers", layers)),
            )
        )
    return panels


def figure3_panels() -> list[Panel]:
    panels = []
    for i in range(5):
        row = "ABCDE"[i]
        layers = layer_set(i + 1)
        for j, ratio in enumerate(FIG3_RATIOS):
            panels.append(
                Panel(
                    key=f"fig3_{row}_{ratio_label(ratio)}",
                    row=i,
                    column=j,
                    caption="",
                    uses_content=True,
                    uses_style=True,
                    # alpha/beta as alpha = 1, beta = 1/ratio: Config's convention (style_weight
                    # 1e3 is the paper's 1e-3); Adam's steps do not depend on the loss's scale.
                    changes=(
                        ("content_layers", (FIG3_CONTENT_LAYER,)),
                        ("style_layers", layers),
                        ("content_weight", 1.0),
                        ("style_weight", 1.0 / ratio),
                    ),
                )
            )
    return panels


def panels_for(figure: int) -> list[Panel]:
    if figure == 1:
        return figure1_panels()
    if figure == 3:
        return figure3_panels()
    raise InputError(f"--figure must be one of {', '.join(map(str, FIGURES))}; got {figure!r}")


def callbacks_for_panel(config: Config, panel: Panel) -> list:
    """Extra loop callbacks for one panel's run: the one place to attach per-panel hooks.

    TensorBoard needs nothing here: with --logdir, each panel's config carries logdir and
    run_name = the panel's key, and `api.run` attaches its logger from those, so every panel is
    one TensorBoard run (``<logdir>/fig3_B_1e-4``) and its curves can be compared side by side.
    """
    return []


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recorded_settings(settings: Settings, figure: int) -> dict[str, Any]:
    """What a figure's panels depend on, as written to figure<N>.json."""
    d = dataclasses.asdict(settings)
    for key in ("content", "style", "output_dir", "logdir"):  # paths: the inputs count by their bytes
        d.pop(key)
    d["figure"] = figure
    d["content_sha256"] = _file_digest(settings.content)
    d["style_sha256"] = _file_digest(settings.style)
    d["learning_rate"] = settings.base_config().effective_learning_rate
    if settings.weights not in ("imagenet", "random") and os.path.isfile(settings.weights):
        d["weights_sha256"] = _file_digest(settings.weights)
    return d


def _settings_path(settings: Settings, figure: int) -> str:
    return os.path.join(settings.output_dir, f"figure{figure}.json")


def _check_recorded(settings: Settings, figure: int, panels: Sequence[Panel]) -> tuple[dict[str, Any], bool]:
    """The settings to record, and whether a panel of the figure already exists in the folder.

    Refuses other settings than the recorded ones only when a panel exists: the json alone
    describes no pixels (a run that failed before its first panel leaves none, and older
    versions wrote the json before any work), so it must not block a corrected rerun.
    """
    path = _settings_path(settings, figure)
    current = recorded_settings(settings, figure)
    has_panels = any(os.path.exists(os.path.join(settings.output_dir, p.filename)) for p in panels)
    if has_panels and os.path.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError(f"--output_dir: cannot read {path} ({e}); delete it to start the figure afresh") from None
        differing = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if differing:
            raise InputError(
                f"--output_dir: {settings.output_dir} holds Fig. {figure} panels made with other settings "
                f"({', '.join(differing)} differ, see {path}); use another --output_dir or delete those files"
            )
    return current, has_panels


def _record(settings: Settings, figure: int, current: dict[str, Any]) -> None:
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    write_atomically(_settings_path(settings, figure), lambda f: f.write(text.encode("utf-8")))


def make_figure(
    figure: int, settings: Settings, *, log: Callable[[str], None] = print
) -> dict[str, str]:
    """Runs the panels of Fig. `figure` that are missing and draws the sheet.

    Returns file name -> path for every panel and the sheet. Prints one line per panel.
    """
    panels = panels_for(figure)
    base = settings.base_config()
    content_raw = images.load_image(settings.content, "--content")
    style_raw = images.load_image(settings.style, "--style")
    if os.path.exists(settings.output_dir) and not os.path.isdir(settings.output_dir):
        raise InputError(f"--output_dir: {settings.output_dir} is a file; expected a folder")
    os.makedirs(settings.output_dir, exist_ok=True)
    current, has_panels = _check_recorded(settings, figure, panels)
    # With panels present the json matches (checked above) or is missing: (re)write it now.
    # Otherwise it is written just before the first panel file, so that a run failing before
    # any panel (missing weights, no network for the ImageNet download) leaves no record that
    # would refuse the corrected rerun, and no panel ever exists without its record.
    recorded = has_panels
    if recorded:
        _record(settings, figure, current)

    paths = {p.filename: os.path.join(settings.output_dir, p.filename) for p in panels}
    todo = [p for p in panels if not os.path.exists(paths[p.filename])]
    for n, panel in enumerate(panels, 1):
        if panel not in todo:
            log(f"[{n}/{len(panels)}] {panel.key}: exists, skipped")
    if todo:
        # TensorFlow loads only when there is something to run: redrawing a finished figure's
        # sheet is instant.
        from tf_style import api

        content, style = api.prepare_images(base, content_raw, style_raw)
        size = content.shape[:2]  # textures get the photo's size, so the sheet's cells agree
        # One network for the whole figure: normalised (if asked) on both images together.
        norm_images = [content, style]
        for panel in todo:
            n = panels.index(panel) + 1
            config = base.replace(
                **dict(panel.changes),
                output_size=None if panel.uses_content else size,
                logdir=settings.logdir,
                run_name=panel.key if settings.logdir else None,
            )
            started = time.perf_counter()
            # No output= here: api.run saves the unfinished image on Ctrl-C, and a panel file
            # must only ever hold a finished panel, or the rerun would skip it.
            result = api.run(
                config,
                content if panel.uses_content else None,
                style if panel.uses_style else None,
                callbacks=callbacks_for_panel(config, panel),
                normalization_images=norm_images,
                content_name=_stem(settings.content) if panel.uses_content else None,
                style_name=_stem(settings.style) if panel.uses_style else None,
            )
            if not recorded:
                _record(settings, figure, current)
                recorded = True
            images.save_image(result.image, paths[panel.filename])
            first = result.history[0]["total"] if result.history else float("nan")
            last = result.final_terms.get("total", float("nan"))
            log(
                f"[{n}/{len(panels)}] {panel.key}: {config.num_steps} steps in "
                f"{time.perf_counter() - started:.1f} s, loss {first:.4g} -> {last:.4g}"
            )

    sheet_path = os.path.join(settings.output_dir, f"figure{figure}.png")
    images.save_image(draw_sheet(figure, settings, content_raw, style_raw, paths), sheet_path)
    log(f"wrote {sheet_path}")
    paths[os.path.basename(sheet_path)] = sheet_path
    return paths


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _weights_label(settings: Settings) -> str:
    if settings.weights == "random":
        weights = f"seeded random VGG19 weights (seed {settings.seed}), not ImageNet"
    elif settings.weights == "imagenet":
        weights = "ImageNet VGG19 weights"
    else:
        weights = f"VGG19 weights {os.path.basename(settings.weights)}"
    norm = ", normalised" if settings.normalize_vgg else ""
    return f"{weights}{norm}; {settings.num_steps} {settings.optimizer} steps, {settings.image_size} px"


def draw_sheet(
    figure: int, settings: Settings, content: np.ndarray, style: np.ndarray, paths: dict[str, str]
) -> np.ndarray:
    """The labelled contact sheet of a figure from its panel files (missing ones drawn grey)."""
    from tf_style import sheets

    panels = panels_for(figure)
    n_rows = max(p.row for p in panels) + 1
    n_cols = max(p.column for p in panels) + 1
    cells: list[list[np.ndarray | None]] = [[None] * n_cols for _ in range(n_rows)]
    captions = [[""] * n_cols for _ in range(n_rows)]
    for p in panels:
        path = paths[p.filename]
        cells[p.row][p.column] = images.load_image(path, "panel") if os.path.exists(path) else None
        captions[p.row][p.column] = p.caption
    present = [c for r in cells for c in r if c is not None]
    longest = max((max(c.shape[:2]) for c in present), default=settings.image_size)
    if figure == 1:
        cells[0][0] = images.resize_longest(content, longest)
        cells[1][0] = images.resize_longest(style, longest)
        captions[0][0] = "photograph"
        captions[1][0] = "style image"
        return sheets.contact_sheet(
            cells,
            row_labels=["content\nreconstructions", "style\nreconstructions"],
            captions=captions,
            title=f"Fig. 1 (Gatys et al. 2015): {_weights_label(settings)}",
        )
    return sheets.contact_sheet(
        cells,
        row_labels=[f"{'ABCDE'[i]}: {_span(layer_set(i + 1))}" for i in range(n_rows)],
        column_labels=[f"alpha/beta = {ratio_label(r)}" for r in FIG3_RATIOS],
        title=(
            f"Fig. 3 (Gatys et al. 2015): rows = style layers, columns = alpha/beta; content on "
            f"{FIG3_CONTENT_LAYER}\n{_weights_label(settings)}"
        ),
    )


__all__ = [
    "FIGURES",
    "Settings",
    "Panel",
    "figure1_panels",
    "figure3_panels",
    "panels_for",
    "callbacks_for_panel",
    "make_figure",
    "draw_sheet",
    "ratio_label",
]
