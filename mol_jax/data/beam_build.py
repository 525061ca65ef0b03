"""Clip pre-processing on Apache Beam, for `builder.MicroExpressionBuilder`.

A build given Beam options (`tfds build --beam_pipeline_options=...`) gets
one `BuildClips` per split from the builder's `_generate_examples`; TFDS runs
it on its pipeline and writes what it yields. The per-clip work is the
parallel step, one `preprocess.process_job` per element, so a cluster runner
spreads the clips of every split over its workers. This module imports
apache_beam, and is imported only on that path: the default build needs no
Beam. It builds records through `mol_jax.data.records`, as the default path
does, and imports nothing of the builder.

What a worker builds and skips is counted where the default path counts it
(`records.example_or_skip`), in a `SkipSummary` that also feeds Beam counters
(namespace `SKIPPED`, one per reason; the paths in string sets): a worker's
summary does not reach the builder, the counters do, and the builder adds
them to its own when the pipeline is done (`add_counts`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import apache_beam as beam
from apache_beam.metrics import metric

from mol_jax.data import preprocess
from mol_jax.data import records

# Counter namespaces: built clips and borrowed boxes in `BUILT`, one counter
# per skip reason in `SKIPPED` (and one string set of paths, in `SKIPPED_PATHS`).
BUILT = 'mol_jax.built'
SKIPPED = 'mol_jax.skipped'
SKIPPED_PATHS = 'mol_jax.skipped_paths'
CLIPS = 'clips'
REUSED_BOXES = 'reused_boxes'

Annotate = Callable[[preprocess.ClipJob, preprocess.Clip], dict] | None


class _CountingSummary(preprocess.SkipSummary):
  """A worker's summary: logs as the default path does, and passes each
  count on to the Beam counters that reach the builder."""

  def skip(self, reason: str, path: str, detail: str = '') -> None:
    super().skip(reason, path, detail)
    metric.Metrics.counter(SKIPPED, reason).inc()
    metric.Metrics.string_set(SKIPPED_PATHS, reason).add(path)

  def built(self, reused_boxes: int) -> None:
    super().built(reused_boxes)
    metric.Metrics.counter(BUILT, CLIPS).inc()
    metric.Metrics.counter(BUILT, REUSED_BOXES).inc(reused_boxes)


class _ProcessClip(beam.DoFn):
  """(job, entry, label) -> its (key, example), or nothing when skipped."""

  def __init__(self, options: preprocess.PreprocessOptions, annotate: Annotate, name: str):
    super().__init__()
    self._options = options
    self._annotate = annotate
    self._name = name

  def setup(self):
    # Once per worker: the dlib models take seconds to load.
    self._detector = preprocess.worker_detector(self._options)
    self._summary = _CountingSummary(self._name)

  def process(self, item: records.Item):
    _, result = preprocess.process_job(item[0], self._detector, self._options, self._annotate)
    example = records.example_or_skip(item, result, self._summary)
    if example is not None:
      yield example


class BuildClips(beam.PTransform):
  """The examples of one split: its clip jobs, pre-processed in parallel."""

  def __init__(self, items: Sequence[records.Item], options: preprocess.PreprocessOptions,
               annotate: Annotate, name: str = 'pre-processing'):
    super().__init__()
    self._items = list(items)
    self._options = options
    self._annotate = annotate
    self._name = name

  def expand(self, pipeline):
    return (pipeline
            | 'Jobs' >> beam.Create(self._items)
            # `Create` puts every job in one bundle; without the shuffle the
            # runner fuses it with the pre-processing, on one worker.
            | 'Spread' >> beam.Reshuffle()
            | 'Preprocess' >> beam.ParDo(_ProcessClip(self._options, self._annotate,
                                                      self._name)))


def _value(result: Any) -> Any:
  # Some runners report attempted values only.
  return result.committed if result.committed is not None else result.attempted


def add_counts(summary: preprocess.SkipSummary, pipeline_result) -> None:
  """Adds what the workers counted in `pipeline_result` to `summary`."""
  query = pipeline_result.metrics().query(
      metric.MetricsFilter().with_namespaces([BUILT, SKIPPED, SKIPPED_PATHS]))
  # One result per step (the split's 'Preprocess'): summed by name.
  for result in query.get(metric.MetricResults.COUNTERS, []):
    name, value = result.key.metric, _value(result) or 0
    if name.namespace == SKIPPED:
      summary.counts[name.name] += value
    elif name.name == CLIPS:
      summary.clips_built += value
    elif name.name == REUSED_BOXES:
      summary.reused_boxes += value
  for result in query.get(metric.MetricResults.STRINGSETS, []):
    paths = _value(result) or ()
    summary.examples[result.key.metric.name].extend(sorted(paths))
