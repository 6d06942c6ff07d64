"""The panels of the paper's Fig. 1 and Fig. 3 and the labelled sheets drawn from them.

Fig. 1: content reconstructions from conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (a-e) and style
reconstructions (textures) from the growing layer sets conv1_1 / ..conv2_1 / ... / ..conv5_1 (a-e).
Fig. 3: photo + artwork with the style matched on the layer sets A-E (rows) and
alpha/beta = 1e-5, 1e-4, 1e-3, 1e-2 (columns), content on conv4_2.

What a panel is and where it sits lives here; running and resuming them is tf_style.figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tf_style import images
from tf_style.config import PAPER_STYLE_LAYERS, Config
from tf_style.errors import Field, InputError

FIGURES = (1, 3)
#: Fig. 1 content reconstructions a-e.
FIG1_CONTENT_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: Fig. 3 columns: alpha/beta.
FIG3_RATIOS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
FIG3_CONTENT_LAYER = "conv4_2"

#: Config fields each panel sets itself (the layer weights follow its layers); a figure takes
#: every other field from its base Config.
PANEL_FIELDS: tuple[str, ...] = (
    "content_layers", "style_layers", "style_layer_weights", "content_weight", "style_weight", "output_size"
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
    raise InputError(Field("figure"), f" must be one of {', '.join(map(str, FIGURES))}; got {figure!r}")


def _weights_label(config: Config) -> str:
    if config.weights == "random":
        weights = f"seeded random VGG19 weights (seed {config.seed}), not ImageNet"
    elif config.weights == "imagenet":
        weights = "ImageNet VGG19 weights"
    else:
        weights = f"VGG19 weights {os.path.basename(config.weights)}"
    norm = ", normalised" if config.normalize_vgg else ""
    return f"{weights}{norm}; {config.num_steps} {config.optimizer} steps, {config.image_size} px"


def draw_sheet(
    figure: int, config: Config, content: np.ndarray, style: np.ndarray, paths: dict[str, str]
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
    longest = max((max(c.shape[:2]) for c in present), default=config.image_size)
    if figure == 1:
        cells[0][0] = images.resize_longest(content, longest)
        cells[1][0] = images.resize_longest(style, longest)
        captions[0][0] = "photograph"
        captions[1][0] = "style image"
        return sheets.contact_sheet(
            cells,
            row_labels=["content\nreconstructions", "style\nreconstructions"],
            captions=captions,
            title=f"Fig. 1 (Gatys et al. 2015): {_weights_label(config)}",
        )
    return sheets.contact_sheet(
        cells,
        row_labels=[f"{'ABCDE'[i]}: {_span(layer_set(i + 1))}" for i in range(n_rows)],
        column_labels=[f"alpha/beta = {ratio_label(r)}" for r in FIG3_RATIOS],
        title=(
            f"Fig. 3 (Gatys et al. 2015): rows = style layers, columns = alpha/beta; content on "
            f"{FIG3_CONTENT_LAYER}\n{_weights_label(config)}"
        ),
    )


__all__ = [
    "FIGURES",
    "FIG1_CONTENT_LAYERS",
    "FIG3_RATIOS",
    "FIG3_CONTENT_LAYER",
    "PANEL_FIELDS",
    "Panel",
    "draw_sheet",
    "figure1_panels",
    "figure3_panels",
    "layer_set",
    "panels_for",
    "ratio_label",
]
