"""tf-style: renders a photograph in the style of an artwork (Gatys, Ecker & Bethge 2015).

    tf-style --content=photo.jpg --style=painting.jpg --output=out.png [flags]   # style transfer
    tf-style --content=photo.jpg --output=recon.png [flags]                       # content reconstruction
    tf-style --style=painting.jpg --output=texture.png [flags]                    # texture synthesis

Exit status: 0 on success, 2 for bad usage or bad input (one line on stderr, no traceback),
130 after Ctrl-C and 143 after SIGTERM (the current step finishes, then the image and a
checkpoint are written, and the command that resumes is printed), 1 when the loss becomes
infinite or NaN (the last finite image is kept) and for anything else.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys

# TensorFlow's C++ start-up chatter ("could not find cuda drivers", ...) buries our one-line
# errors and the progress bar; TF_CPP_MIN_LOG_LEVEL set by the user still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from tf_style import cli_flags, run_dirs  # noqa: E402
from tf_style.config import Config, RunOptions  # noqa: E402
from tf_style.errors import Diverged, Field, InputError, Interrupted, OutOfMemory  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = "tf-style"
MODULE = __name__  # the flags' owner, for --help
FLAGS = flags.FLAGS
#: Every Config and RunOptions field is a flag of tf-style.
FIELDS: tuple[str, ...] = Config.field_names() + RunOptions.field_names()

flags.DEFINE_string("content", None, "The photograph: its content is kept (Eq. 1).", module_name=MODULE)
flags.DEFINE_string(
    "style", None, "The artwork: its style is transferred (Eq. 5). Several, comma-separated, are blended "
    "(--style_blend_weights).", module_name=MODULE,
)
flags.DEFINE_string(
    "output", None, "Where to write the result; the format follows the extension (PNG if none).", module_name=MODULE
)
flags.DEFINE_string(
    "config_from", None, "Take every setting from a picture tf-style wrote (its PNG or JPEG carries them); the flags "
    "given here change them.", module_name=MODULE,
)
flags.DEFINE_bool(
    "dry_run", False, "Print each scale's size, steps, predicted peak memory and time per step; run nothing (refusing "
    "what the run would refuse before its first step).",
    module_name=MODULE,
)
cli_flags.define_flags(FIELDS, MODULE)


def main(argv: list[str]) -> None:
    """The program: `stylize_from_flags`, with bad input reported as one line and exit status 2."""
    cli_flags.reporting_errors(PROG, stylize_from_flags, argv)


def stylize_from_flags(argv: list[str]) -> None:
    """Flags -> settings and images -> `tf_style.api.run` -> the picture and a summary line."""
    if len(argv) > 1:
        raise InputError(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    if not FLAGS.output and not FLAGS.dry_run:
        raise InputError(Field("output"), " is required (where to write the result, e.g. ", Field("output"), "=out.png)")
    from tf_style import images

    config, options, style_paths = settings_from_command_line()
    # Without --style this is the paper's content reconstruction (content loss only), without
    # --content its texture synthesis (style loss only): the same run with one term left out.
    config.check_inputs(content=bool(FLAGS.content), style=bool(style_paths), styles=len(style_paths))
    from tf_style import batch

    if FLAGS.content and batch.is_many(FLAGS.content):
        if FLAGS.dry_run:
            raise InputError(Field("content"), f": {FLAGS.content} names several photos; ", Field("dry_run"),
                             " plans one run: give one of them")
        return stylize_folder(config, options, style_paths)
    # Read the inputs before TensorFlow loads, so a wrong path fails in a blink.
    content = images.load_image(FLAGS.content, Field("content")) if FLAGS.content else None
    style = load_styles(style_paths)
    if FLAGS.output:  # the dry run checks what the run would: the output and the files beside it too
        images.check_output_path(FLAGS.output, create=not FLAGS.dry_run)
        images.check_outputs_spare_inputs(FLAGS.output, input_paths(config, FLAGS.content, style_paths), options.save_every)
    names = {"content": run_dirs.image_name(FLAGS.content), "style": styles_name(style_paths)}
    if FLAGS.dry_run:
        print(dry_run_report(config, content, style, options, FLAGS.output or None, names))
        return
    import_tensorflow_quietly()
    from tf_style import api, stopping
    from tf_style.tensorboard_logger import TensorBoardLogger

    logger = TensorBoardLogger.from_options(options)
    try:
        with stopping.stop_on_signals(stopping.StopSwitch(), PROG) as stop:
            result = api.run(
                config,
                content,
                style,
                options=options,
                output=FLAGS.output,
                progress=True,
                callbacks=[logger] if logger is not None else [],
                content_name=names["content"],
                style_name=names["style"],
                stop=stop,
            )
    except Interrupted as e:
        exit_interrupted(e)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted before the optimisation started; nothing was written", file=sys.stderr)
        sys.exit(130)
    except (Diverged, OutOfMemory) as e:
        print(f"{PROG}: {e.render(cli_flags.flag_name)}", file=sys.stderr)
        sys.exit(1)
    finally:
        if logger is not None:
            logger.close()
    for warning in result.warnings:
        print(f"{PROG}: warning: {warning.render(cli_flags.flag_name)}", file=sys.stderr)
    print(summary_line(result, logger.run_dir if logger is not None else None, options.logdir))


def settings_from_command_line() -> tuple[Config, RunOptions, list[str]]:
    """The Config (from --config_from's picture, if given, changed by the flags given), the
    RunOptions, and the --style paths (several: comma-separated)."""
    from tf_style import provenance

    style_paths = [p for p in (FLAGS.style or "").split(",") if p]
    earlier = fitted(provenance.config_from(FLAGS.config_from), style_paths) if FLAGS.config_from else None
    config = cli_flags.settings_from_flags(Config, FIELDS, base=earlier, base_name=FLAGS.config_from)
    return config, cli_flags.settings_from_flags(RunOptions, FIELDS), style_paths


def fitted(earlier: Config, style_paths: list[str]) -> Config:
    """An earlier picture's settings made to fit this command: a flag given here replaces the
    recorded fields it conflicts with, and settings for inputs no longer given are dropped."""
    given = lambda name: not FLAGS[name].using_default_value  # noqa: E731
    changes: dict = {}
    if given("style_scale"):
        changes["style_size"] = None
    if given("style_size"):
        changes["style_scale"] = None
    weights = earlier.style_blend_weights
    if weights is not None and not given("style_blend_weights") and len(weights) != len(style_paths):
        changes["style_blend_weights"] = None
    regions = earlier.style_masks
    if regions is not None and not given("style_masks") and (len(regions) != len(style_paths) or given("style_blend_weights")):
        changes["style_masks"] = None
    if given("style_masks"):
        changes["style_blend_weights"] = None
    if FLAGS.content and not given("output_size"):
        changes["output_size"] = None
    return earlier.replace(**changes) if changes else earlier


def input_paths(config: Config, content: str | None, style_paths: list[str]) -> dict[str, object]:
    """Every file the run reads, by setting: an output may be none of them."""
    return {"content": content, "style": style_paths, "init": config.init, "config_from": FLAGS.config_from,
            "style_masks": list(config.style_masks or ())}


def styles_name(paths: list[str]) -> str | None:
    """The style images' names for TensorBoard and the picture's record: ``a+b``."""
    return "+".join(run_dirs.image_name(p) or "" for p in paths) or None


def load_styles(paths: list[str]):
    """The --style images (None, one array, or a list of arrays for several), read before TensorFlow loads."""
    from tf_style import images

    loaded = [images.load_image(p, Field("style")) for p in paths]
    return None if not loaded else loaded[0] if len(loaded) == 1 else loaded


def exit_interrupted(e: Interrupted) -> None:
    """Says where the image and checkpoint went and how to go on; exits 130 (SIGINT) or 143 (SIGTERM)."""
    from tf_style import stopping

    for signum in stopping.EXIT_STATUS:  # the user asked to stop: more signals must not cut the exit short
        signal.signal(signum, signal.SIG_IGN)
    print(f"\n{PROG}: {interrupted_message(e)}", file=sys.stderr)
    sys.exit(stopping.EXIT_STATUS.get(e.signum, 130))


def stylize_folder(config: Config, options: RunOptions, style_paths: list[str]) -> None:
    """--content a folder or glob, --output a folder: one picture per photo (tf_style.batch); exit 1 if any failed."""
    from tf_style import batch, images

    contents = batch.photos(FLAGS.content)
    outputs = batch.outputs_for(contents, FLAGS.output)
    batch.check_output_folder(FLAGS.content, outputs)
    style = load_styles(style_paths)
    for content, output in zip(contents, outputs):  # before any work, as for one photo
        images.check_output_path(output)
        images.check_outputs_spare_inputs(output, input_paths(config, content, style_paths), options.save_every)
    import_tensorflow_quietly()
    from tf_style import stopping
    from tf_style.tensorboard_logger import TensorBoardLogger

    loggers: list = []

    def callbacks_for(output: str) -> list:
        for logger in loggers:  # one TensorBoard run per photo; the previous one is done
            logger.close()
        name = f"{options.run_name}_{run_dirs.image_name(output)}" if options.run_name else None
        loggers[:] = [x for x in [TensorBoardLogger.from_options(options.replace(run_name=name))] if x is not None]
        return list(loggers)

    try:
        with stopping.stop_on_signals(stopping.StopSwitch(), PROG) as stop:
            outcomes = batch.run_folder(config, options, contents, outputs, style, stop=stop, callbacks_for=callbacks_for,
                                        style_name=styles_name(style_paths),
                                        render=lambda e: e.render(cli_flags.flag_name))
    except Interrupted as e:
        exit_interrupted(e)
    finally:
        for logger in loggers:
            logger.close()
    counts = {k: sum(o.status == k for o in outcomes) for k in ("done", "skipped", "failed")}
    print(f"{len(outcomes)} photos: {counts['done']} done, {counts['skipped']} skipped (finished before), "
          f"{counts['failed']} failed; pictures in {FLAGS.output}")
    for o in outcomes:
        if o.status == "failed":
            print(f"{PROG}: {o.content}: {o.message}", file=sys.stderr)
    if counts["failed"]:
        sys.exit(1)


def summary_line(result, run_dir: str | None, logdir: str | None) -> str:
    """The line a finished run prints: what was written, how long, the loss, the scales, where the logs are."""
    first, last = result.history[0] if result.history else {}, result.final_terms
    h, w = result.image.shape[:2]
    summary = f"wrote {FLAGS.output} ({w}x{h}) in {result.seconds:.1f} s"
    if result.resumed_at:
        summary += f", resumed at step {result.resumed_at}"
    if first and last:
        summary += f"; total loss {first['total']:.4g} -> {last['total']:.4g} over {len(result.history)} steps"
    ran = [s for k, s in enumerate(result.scales) if k not in result.skipped]
    if len(ran) > 1:
        summary += " at " + " -> ".join(f"{s.size}px" for s in ran)
    if result.skipped:  # the picture never went through these: say so rather than list them
        summary += " (no time left for " + ", ".join(f"{result.scales[k].size}px" for k in result.skipped) + ")"
    if result.stopped in ("time", "converged"):
        summary += " (stopped: " + ("--max_seconds reached" if result.stopped == "time" else "converged") + ")"
    if run_dir is not None:
        summary += f"; TensorBoard run {run_dir} (tensorboard --logdir {logdir})"
    return summary


def interrupted_message(e: Interrupted) -> str:
    """What an interrupted run tells the user: where the image went, and how to go on."""
    text = f"stopped after step {e.step}" if e.step else "stopped before the first step"
    text += f"; the image so far was written to {e.saved_to}" if e.saved_to else ("; nothing was written" if not e.step else "")
    if e.checkpoint:
        argv = [a for a in sys.argv[1:] if a not in ("--resume", "--resume=true", "--noresume", "--resume=false")]
        text += f"; checkpoint: {e.checkpoint}. To continue: {shlex.join([PROG, *argv, '--resume'])}"
    elif e.step:
        text += " (no checkpoint was written)"
    return text


def dry_run_report(config: Config, content, style, options: RunOptions = RunOptions(), output: str | None = None,
                   input_names: dict[str, str | None] | None = None) -> str:
    """The plan and its predicted cost for these (loaded, full-size) inputs, once what the run would refuse before its
    first step is checked (the output and checkpoints too: a resume says where it continues)."""
    from tf_style import api, checkpoints, estimate, schedule

    shapes = [None if content is None else content.shape[:2], [s.shape[:2] for s in api.as_list(style)] or None]
    plan = schedule.plan_for_inputs(config, *shapes)
    import_tensorflow_quietly()
    from tf_style.normalize import gpu_runs_it, network_policies
    from tf_style.stages import check_plan

    check_plan(config, plan, shapes[1] or (), has_content=content is not None)  # the sizes the run would refuse
    api.check_before_run(config, *shapes, options)  # and what else it refuses before its first step (memory too)
    resumed = None if output is None else api.check_run_files(config, options, output, content, style, input_names or {}, plan)
    costs = estimate.costs(config, plan, style is not None, *shapes, gpu=gpu_runs_it())
    # The rate of the arithmetic a scale starts in (with mixed_bfloat16_then_float32, bfloat16's).
    rate = estimate.measure_flop_rate(dtype_policy=network_policies(config)[0])
    report = estimate.report(costs, rate, api.memory_for(options), config.max_seconds)
    if resumed is not None:
        report += (f"\nresumes from step {resumed} (the checkpoint in {checkpoints.folder_for(options, output)}): "
                   "fewer steps than the table's remain")
    return report


def run() -> None:
    """Console-script entry point (`tf-style`)."""
    cli_flags.run_tool(main, PROG, __doc__, MODULE)


if __name__ == "__main__":
    run()
