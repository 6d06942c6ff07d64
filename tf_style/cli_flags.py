"""Command-line flags from one table, and the command-line edge's one voice for errors.

Every `Config` and `RunOptions` field has exactly one row in `ROWS`: its flag's kind, help text,
choices and bounds. Defaults come from `Config()` / `RunOptions()`, choices from the library's
own tuples, so nothing is typed twice. A tool asks for the fields it takes (`define_flags`), and
turns its flags back into settings (`settings_from_flags`); a new field with its row becomes a
flag of tf-style, of tools/export_savedmodel.py and of tools/paper_figures.py at once.

Errors: the library names fields (``image_size must be ...``); `render` writes them as flags
(``--image_size must be ...``). absl is imported here and in tf_style/cli.py only.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NoReturn, Sequence, TypeVar

from absl import app, flags

from tf_style.config import COLOR_CHOICES, INIT_CHOICES, MAX_IMAGE_SIZE, MAX_SECONDS, MAX_SEED, MAX_STEPS
from tf_style.config import MIN_IMAGE_SIZE, OPTIMIZER_CHOICES, Config, RunOptions
from tf_style.errors import Field, InputError
from tf_style.layers import POOLING_CHOICES
from tf_style.precision import DTYPE_POLICY_CHOICES

FLAGS = flags.FLAGS
_S = TypeVar("_S", Config, RunOptions)


@dataclass(frozen=True)
class Row:
    """One field's flag: its absl kind ("integer", "float", "string", "list", "bool", "enum"),
    help text, choices (enum), inclusive bounds (integer, float), and how a flag value
    becomes the field's value (`parse`; default: as is, lists as tuples)."""

    field: str
    kind: str
    help: str
    choices: Sequence[str] = ()
    lower: float | None = None
    upper: float | None = None
    parse: Callable[[Any], Any] | None = None


def parse_output_size(text: str | None) -> tuple[int, int] | None:
    """--output_size: "WIDTHxHEIGHT" or "N" (square) -> (height, width), as Config holds sizes."""
    if text is None:
        return None
    parts = text.lower().replace(" ", "").split("x")
    if not (len(parts) in (1, 2) and all(p.isdigit() for p in parts)):
        raise InputError(Field("output_size"), f": expected WIDTHxHEIGHT (e.g. 300x200) or one number; got {text!r}")
    width, height = int(parts[0]), int(parts[-1])
    if not (MIN_IMAGE_SIZE <= width <= MAX_IMAGE_SIZE and MIN_IMAGE_SIZE <= height <= MAX_IMAGE_SIZE):
        raise InputError(
            Field("output_size"), f": each side must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels; got {text}"
        )
    return height, width


def _blend_numbers(values: list[str] | None) -> tuple[float, ...] | None:
    try:
        return _numbers(values)
    except InputError:
        raise InputError(Field("style_blend_weights"), f": expected comma-separated numbers; got {','.join(values)}") from None


def _numbers(values: list[str] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise InputError(
            Field("style_layer_weights"), f": expected comma-separated numbers; got {','.join(values)}"
        ) from None


ROWS: tuple[Row, ...] = (
    # Config: what decides the picture.
    Row("image_size", "integer", "Longest side of the output in pixels.", lower=MIN_IMAGE_SIZE, upper=MAX_IMAGE_SIZE),
    Row("style_size", "integer", "Longest side of the style image in pixels (default: --image_size).",
        lower=MIN_IMAGE_SIZE, upper=MAX_IMAGE_SIZE),
    Row("style_blend_weights", "list", "With several --style images: how much of each, comma-separated (normalised to "
        "sum to 1; default: equal).", parse=_blend_numbers),
    Row("style_masks", "list", "With several --style images: one mask image per style image, comma-separated, white "
        "where that style goes (grey: partly); each is resized to the output. Instead of --style_blend_weights."),
    Row("style_scale", "float", "The style image's longest side relative to the output's (0.5: finer brush strokes, "
        "2: larger); instead of --style_size.", lower=0.0),
    Row("content_layers", "list", "Content layers (paper: conv4_2; Keras names work too)."),
    Row("style_layers", "list", "Style layers (paper: conv1_1..conv5_1)."),
    Row("style_layer_weights", "list", "w_l per style layer, in --style_layers order (default 1/number of layers).",
        parse=_numbers),
    Row("content_weight", "float", "alpha in Eq. 7.", lower=0.0),
    Row("style_weight", "float", "beta in Eq. 7 (the paper's alpha/beta: 1e-3 and 1e-4).", lower=0.0),
    Row("tv_weight", "float", "Weight of the total-variation smoothness prior (0: the paper's objective).", lower=0.0),
    Row("pooling", "enum", "VGG19 pooling: avg (paper) or max (Keras's original).", choices=POOLING_CHOICES),
    Row("init", "string", f"Start image: {' | '.join(INIT_CHOICES)} | PATH (paper: noise)."),
    Row("optimizer", "enum", "lbfgs (L-BFGS on the pixel range, with a line search), or adam.",
        choices=OPTIMIZER_CHOICES),
    Row("learning_rate", "float",
        "Step size (default: the optimiser's; adam: 10 in pixel units, lbfgs: 1, the first trial step)."),
    Row("num_steps", "integer", "Optimisation steps at the final size; each coarser scale runs twice as many as the "
        "next finer one.", lower=0, upper=MAX_STEPS),
    Row("scales", "integer", "Sizes to optimise at, coarse to fine, each twice the previous (1: the paper's "
        "single resolution).", lower=1, upper=8),
    Row("coarsest_size", "integer", "Smallest longest side of a coarse scale, in pixels.",
        lower=MIN_IMAGE_SIZE, upper=MAX_IMAGE_SIZE),
    Row("max_seconds", "float", "Run for this many seconds after the first step starts and write the result, "
        "whatever --num_steps says; a positive number (default: no limit).", upper=MAX_SECONDS),
    Row("tolerance", "float", "lbfgs: finish a scale once the projected gradient has fallen to this fraction of its "
        "start, at most 1 (0: only where it is exactly 0).", lower=0.0, upper=1.0),
    Row("seed", "integer", "Seeds the white-noise start (and --weights=random).", lower=-MAX_SEED, upper=MAX_SEED),
    Row("weights", "string", "VGG19 weights: imagenet (Keras download/cache), random (seeded), or a .h5 PATH."),
    Row("normalize_vgg", "bool",
        "Rescale VGG19 so each filter's mean activation over the run's content and style images is 1, "
        "as the paper's network was (the paper averaged over ImageNet images instead)."),
    Row("winograd", "bool", "On a CPU, convolve VGG19's layers with 128 or more input channels by Winograd's "
        "F(4x4, 3x3): the same network, rounded differently, each step 1.2-1.6x faster (Intel, AMD), more memory; float32 only "
        "(with auto on a CPU with bfloat16 instructions: the float32 phase after bfloat16's)."),
    Row("dtype_policy", "enum", "VGG19's arithmetic: float32 (the paper's); mixed_bfloat16 (convolutions in bfloat16, "
        "Gram matrices and losses float32; stops 1-2 % above float32's loss); mixed_bfloat16_then_float32 (L-BFGS: "
        "each scale goes on in float32 once a line search runs out of trials); mixed_float16 (for GPUs' tensor "
        "cores: convolutions in float16, loss-scaled; emulated, 5-7x slower, on most CPUs); auto: "
        "mixed_bfloat16_then_float32 on a CPU with bfloat16 instructions (AVX512_BF16, AMX), else float32.",
        choices=DTYPE_POLICY_CHOICES),
    Row("output_size", "string",
        "Texture synthesis only (no --content): output size as WIDTHxHEIGHT (e.g. 300x200: 300 wide, "
        "200 high) or one number for a square; default: the style image's size.", parse=parse_output_size),
    Row("preserve_colors", "enum", "Keep the photo's colours: luminance (transfer on luminance, the photo's chroma put "
        "back) or histogram (the style image recoloured to the photo's palette first); none: the style's colours.",
        choices=COLOR_CHOICES),
    # RunOptions: how a run is watched and saved.
    Row("print_every", "integer", "Progress line every N steps (0: only at the end).", lower=0),
    Row("save_every", "integer",
        "Also write the image every N steps, beside --output: out.png -> out_00050.png, ... (0: never).", lower=0),
    Row("logdir", "string", "TensorBoard log folder (none: no logging)."),
    Row("run_name", "string", "TensorBoard run folder under --logdir (default: a timestamp plus the input names)."),
    Row("image_every", "integer",
        "TensorBoard snapshot of the image every N steps (default: about 10 per run; 0: only the last).", lower=0),
    Row("checkpoint_dir", "string",
        "Checkpoint folder (default: beside --output, OUTPUT.checkpoints; removed when the run completes)."),
    Row("checkpoint_every", "integer", "Checkpoint every N steps (default: once a minute after the first minute; "
        "0: never, not even on Ctrl-C).", lower=0),
    Row("max_memory_mb", "integer", "Memory a run may plan for, in MB (default: what the machine has available now); "
        "a run predicted to need more is refused at once, with the largest size that fits.", lower=1),
    Row("resume", "bool", "Continue from the latest checkpoint of a run with the same settings and inputs."),
    Row("overwrite", "bool", "Replace whatever file is at --output (default: only a stopped run's picture, or one of "
        "these very settings and inputs, is replaced; any other file is kept and the run refused)."),
)
ROW_BY_FIELD: dict[str, Row] = {row.field: row for row in ROWS}


def _settings_class(field: str) -> type:
    if field in Config.field_names():
        return Config
    if field in RunOptions.field_names():
        return RunOptions
    raise KeyError(f"{field} is neither a Config nor a RunOptions field")


def define_flags(fields: Iterable[str], module_name: str, values: flags.FlagValues = FLAGS) -> None:
    """Defines the flags of `fields` (Config/RunOptions field names), each from its row."""
    for field in fields:
        row = ROW_BY_FIELD[field]
        default = getattr(_settings_class(field)(), field)
        if isinstance(default, tuple):
            default = list(default)
        if row.kind == "integer":
            parser = flags.IntegerParser(row.lower, row.upper)
        elif row.kind == "float":
            parser = flags.FloatParser(row.lower, row.upper)
        elif row.kind == "list":
            parser = flags.ListParser()
        elif row.kind == "bool":
            parser = flags.BooleanParser()
        elif row.kind == "enum":
            parser = flags.EnumParser(list(row.choices))
        else:
            parser = flags.ArgumentParser()
        serializer = flags.CsvListSerializer(",") if row.kind == "list" else flags.ArgumentSerializer()
        if row.kind == "bool":
            flags.DEFINE_flag(flags.BooleanFlag(field, default, row.help), values, module_name=module_name)
        else:
            flags.DEFINE(parser, field, default, row.help, values, serializer, module_name=module_name)


def settings_from_flags(cls: type[_S], fields: Iterable[str], values: flags.FlagValues = FLAGS, base: _S | None = None,
                        base_name: str | None = None) -> _S:
    """A `cls` (Config or RunOptions) with the flags' values for `fields`, defaults elsewhere.

    With `base` (settings read from an earlier picture, `base_name`), only the flags given on the command
    line change it. Validated by the class itself: a bad value raises InputError naming the field.
    """
    options = {}
    for field in fields:
        if field not in cls.field_names() or (base is not None and values[field].using_default_value):
            continue
        row, value = ROW_BY_FIELD[field], getattr(values, field)
        if row.parse is not None:
            value = row.parse(value)
        elif isinstance(value, list):
            value = tuple(value)
        options[field] = value
    try:
        return base.replace(**options) if base is not None else cls(**options)
    except InputError as e:  # a setting the flags left as recorded takes part: say where it comes from
        if base_name is None or all(p.name in options for p in e.parts if isinstance(p, Field)):
            raise
        raise InputError(*e.parts, f" (the settings not given as flags are those {base_name} carries)") from None


def flag_name(field: str) -> str:
    return f"--{field}"


def render(error: InputError) -> str:
    """An InputError as the command line shows it: every field named by its flag."""
    return error.render(flag_name)


def fail(prog: str, message: str) -> NoReturn:
    """Bad usage or bad input: one line on stderr, exit status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)


HELP_ARGS = ("-h", "-help", "--help", "-?", "--helpshort", "--helpfull")


def flags_parser(prog: str, doc: str, module_name: str) -> Callable[[list[str]], list[str]]:
    """A `flags_parser` for absl's app.run.

    `--help` prints `doc` and the tool's own flags and exits 0 (absl's exits 1 and lists only the
    flags of `__main__`); a bad flag is one line and exit 2 (absl's default is 1).
    """

    def parse(argv: list[str]) -> list[str]:
        if any(arg in HELP_ARGS for arg in argv[1:]):
            own = FLAGS.module_help(module_name).strip().split("\n", 1)[-1]  # without its "module:" header
            print(f"{doc.strip()}\n\nflags:\n{own}")
            sys.exit(0)
        try:
            return FLAGS(argv)
        except flags.Error as e:
            fail(prog, " ".join(str(e).split()))

    return parse


def run_tool(main: Callable[[list[str]], None], prog: str, doc: str, module_name: str) -> None:
    """absl's app.run(main) with `flags_parser(prog, doc, module_name)`."""
    app.run(main, flags_parser=flags_parser(prog, doc, module_name))


def reporting_errors(
    prog: str, body: Callable[[list[str]], None], argv: list[str],
    on_interrupt: Callable[[KeyboardInterrupt], None] | None = None,
) -> None:
    """Runs `body(argv)`; an InputError escaping it is one line on stderr (fields as flags) and exit 2.

    Ctrl-C (or a signal raised as one) that `body` did not handle, while TensorFlow loads, say, is
    `on_interrupt(e)`, by default one line (where the image so far went, if anywhere) and the
    shell's status for the signal, 130 for SIGINT: never a traceback.
    """
    try:
        body(argv)
    except InputError as e:
        fail(prog, render(e))
    except KeyboardInterrupt as e:
        if on_interrupt is not None:
            on_interrupt(e)
            raise
        saved = getattr(e, "saved_to", None)  # tf_style.errors.Interrupted's
        print(f"\n{prog}: interrupted" + (f"; the image so far was written to {saved}" if saved else ""), file=sys.stderr)
        sys.exit(128 + (getattr(e, "signum", None) or signal.SIGINT))


def prog_name(default: str) -> str:
    """The program's name as the user typed it (for error lines), else `default`."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else default


__all__ = [
    "ROWS",
    "ROW_BY_FIELD",
    "Row",
    "define_flags",
    "fail",
    "flag_name",
    "flags_parser",
    "parse_output_size",
    "render",
    "reporting_errors",
    "run_tool",
    "settings_from_flags",
]
