"""Many photos × many styles through the exported SavedModel on Apache Beam (the extra tf_style[beam]).

The library twin of tools/stylize_batch.py, and the only module that imports Beam:

    pairs -> Reshuffle -> ReadPair -> RunInference(StyleModelHandler) -> WritePair -> summary.json

- The pairs are listed on the launching machine (tf_style.batch_job); Reshuffle spreads them
  over the workers (without it a runner fuses everything behind Create onto one worker).
- ReadPair skips a pair this job already made and reads the two images' bytes; a missing file is
  that pair's error record.
- StyleModelHandler loads the SavedModel once per worker process (a loaded model does not
  pickle: the handler carries the path) and calls ``serving_default`` on up to `batch_size`
  pairs; a batch the model refuses is retried pair by pair (tf_style.pair_results).
- WritePair writes the record, then the PNG, each to a temporary name renamed into place. No
  runner promises a side effect once (Dataflow retries a failed bundle), so the names are fixed,
  the export is deterministic and a retry or a rerun skips what exists: every picture is written
  whole, and a retried one with the same bytes.
Progress is Beam metrics in the namespace "tf_style" (pairs_made, pairs_skipped, pairs_failed,
batches_split), which a runner's UI shows as the job runs; summary.json holds the final counts.
"""

# No `from __future__ import annotations`: Beam reads the DoFns' hints at run time, and string
# hints become Any with an INFO line each.
import json
import logging
from typing import Any, Iterator, Sequence

# Beam's import logs, on every run, that optional Google Cloud clients are missing (a warning and an
# INFO line through the root logger, which absl prints before the tool's own first line): quiet for
# the import only, so a pipeline's own messages still show.
_root, _level = logging.getLogger(), logging.getLogger().level
_root.setLevel(logging.ERROR)
try:
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions
finally:
    _root.setLevel(_level)

from tf_style import pair_results
from tf_style.batch_job import SUMMARY, JobSettings, Pair, join, read_bytes, write_bytes
from tf_style.config import Config
from tf_style.errors import InputError

NAMESPACE = "tf_style"
OUTCOMES = "outcomes"


def _counter(name: str) -> Any:
    return Metrics.counter(NAMESPACE, name)


class StyleModelHandler(ModelHandler):
    """Loads the export's ``serving_default`` once per worker process and runs it on batches of pairs.

    Elements are (Pair, content bytes, style bytes); each result's example is the Pair and its
    inference a pair_results answer (``png`` and ``losses``, or ``error``).
    """

    def __init__(self, model_dir: str, batch_size: int):
        # Fixed batches (Beam's default grows them from 1 by timing): each pair already uses every
        # core, so a batch saves only the per-call overhead, and a fixed size is easy to reason about.
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._model_dir = model_dir

    def load_model(self) -> Any:
        import tensorflow as tf

        return tf.saved_model.load(self._model_dir)  # the loaded object keeps its signatures' variables alive

    def run_inference(
        self, batch: Sequence[tuple[Pair, bytes, bytes]], model: Any, inference_args: Any = None
    ) -> list[PredictionResult]:
        import tensorflow as tf

        serve = model.signatures["serving_default"]
        split = _counter("batches_split")

        def call(contents: list[bytes], styles: list[bytes]) -> dict[str, Any]:
            out = serve(content_bytes=tf.constant(contents, tf.string), style_bytes=tf.constant(styles, tf.string))
            return {k: v.numpy() for k, v in out.items()}

        inputs = [(content, style) for _, content, style in batch]
        answers = pair_results.stylize_isolated(call, inputs, (tf.errors.InvalidArgumentError,), split.inc)
        return [PredictionResult(item[0], answer) for item, answer in zip(batch, answers)]

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


class _PairDoFn(beam.DoFn):
    """Shared by ReadPair and WritePair: the job's settings, the model's Config, failing a pair."""

    def __init__(self, settings: JobSettings, config: dict[str, Any]):
        self._settings, self._config_dict = settings, config

    def setup(self) -> None:
        self._config = Config.from_dict(self._config_dict)

    def fail(self, pair: Pair, error: str) -> beam.pvalue.TaggedOutput:
        write_bytes(self._settings.record(pair), pair_results.record(pair, pair_results.FAILED, error=error))
        _counter("pairs_failed").inc()
        return beam.pvalue.TaggedOutput(OUTCOMES, (pair.name, pair_results.FAILED, error))


class ReadPair(_PairDoFn):
    """A pair to make: (pair, content bytes, style bytes); a made or failed one: an outcome only."""

    def process(self, pair: Pair) -> Iterator[Any]:
        import tensorflow as tf

        output = self._settings.output(pair)
        existing = read_bytes(output) if tf.io.gfile.exists(output) else None
        state = pair_results.state(self._config, pair, existing, self._settings.skip_existing)
        if state == "skip":
            _counter("pairs_skipped").inc()
            yield beam.pvalue.TaggedOutput(OUTCOMES, (pair.name, pair_results.SKIPPED, None))
            return
        if isinstance(state, InputError):
            yield self.fail(pair, str(state))
            return
        try:
            content, style = read_bytes(pair.content), read_bytes(pair.style)
        except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as e:  # the input's fault; others retry
            yield self.fail(pair, f"cannot read an input ({type(e).__name__}: {pair_results.error_text(e)})")
            return
        yield pair, content, style


class WritePair(_PairDoFn):
    """The record first, then the picture: a PNG on disk always has its record."""

    def process(self, result: PredictionResult) -> Iterator[Any]:
        pair, answer = result.example, result.inference
        if "error" in answer:
            yield self.fail(pair, answer["error"])
            return
        png = pair_results.with_provenance(answer["png"], pair_results.provenance_text(self._config, pair))
        write_bytes(self._settings.record(pair), pair_results.record(pair, pair_results.DONE, losses=answer["losses"]))
        write_bytes(self._settings.output(pair), png)
        _counter("pairs_made").inc()
        yield beam.pvalue.TaggedOutput(OUTCOMES, (pair.name, pair_results.DONE, None))


class Summarize(beam.CombineFn):
    """Counts outcomes (tf_style.pair_results' summary) across workers."""

    def create_accumulator(self) -> dict[str, Any]:
        return pair_results.empty_summary()

    def add_input(self, summary: dict[str, Any], outcome: tuple[str, str, str | None]) -> dict[str, Any]:
        return pair_results.add_to_summary(summary, outcome)

    def merge_accumulators(self, summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return pair_results.merge_summaries(list(summaries))

    def extract_output(self, summary: dict[str, Any]) -> dict[str, Any]:
        return summary


def write_summary(summary: dict[str, Any], output_dir: str) -> None:
    write_bytes(join(output_dir, SUMMARY), (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())


def build(pipeline: beam.Pipeline, settings: JobSettings, config: dict[str, Any]) -> None:
    """Adds the job's transforms to `pipeline` (see the module doc)."""
    read = (
        pipeline
        | "Pairs" >> beam.Create(settings.pair_list())
        | "Spread" >> beam.Reshuffle()
        | "ReadPair" >> beam.ParDo(ReadPair(settings, config)).with_outputs(OUTCOMES, main="pairs")
    )
    written = (
        read.pairs
        | "Stylize" >> RunInference(StyleModelHandler(settings.model_dir, settings.batch_size))
        | "WritePair" >> beam.ParDo(WritePair(settings, config)).with_outputs(OUTCOMES, main="unused")
    )
    (
        (read[OUTCOMES], written[OUTCOMES])
        | "Outcomes" >> beam.Flatten()
        | "Summarize" >> beam.CombineGlobally(Summarize())
        | "WriteSummary" >> beam.Map(write_summary, settings.output_dir)
    )


def pipeline_options(args: Sequence[str]) -> PipelineOptions:
    """Beam's options from the arguments the tool did not take; one that Beam does not know either
    is refused (Beam itself would only log a warning and drop it, e.g. a misspelt flag)."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser  # the parser Beam's options use

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    try:
        _, unknown = parser.parse_known_args(list(args))
    except SystemExit:  # argparse's way of saying a value is missing or wrong
        raise InputError(f"bad Beam pipeline options: {' '.join(args)}") from None
    if unknown:
        raise InputError(f"unknown option(s) {' '.join(unknown)}: neither this tool's flags nor Beam pipeline options")
    return PipelineOptions(list(args))


def run(settings: JobSettings, config: dict[str, Any], beam_args: Sequence[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Runs the job to the end on the runner `beam_args` choose (DirectRunner by default); returns
    its summary (pair_results.empty_summary's keys) and the runner's "tf_style" counters."""
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    build(pipeline, settings, config)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {}
    for c in result.metrics().query(beam.metrics.MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + (c.committed or c.attempted or 0)
    return json.loads(read_bytes(join(settings.output_dir, SUMMARY))), counters


__all__ = ["ReadPair", "StyleModelHandler", "Summarize", "WritePair", "build", "pipeline_options", "run", "write_summary"]
