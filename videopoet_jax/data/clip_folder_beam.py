"""The clip_folder build on Apache Beam (TFDS's Beam support): files are read by parallel workers.

  builder = clip_folder.make_builder("media/video")
  options = beam.options.pipeline_options.PipelineOptions(
      ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(beam_options=options))

or `python -m videopoet_jax.data.build --dataset=clip_folder:source_dir=DIR --beam_pipeline_options=...`
(`runner=DataflowRunner,project=...,temp_location=gs://...` for Dataflow; Flink and Spark likewise).

The graph, shared by the splits:
  (split, file, caption) --Reshuffle--> read_file on a worker: (record, candidate examples)
  records --gathered in build order--> ClipSelector, as the single-process build runs it --> kept indices
  candidates + kept indices --> (key, example) of each split; the summary --> BEAM_SUMMARY in the data folder
Every step but the selector (hashes and counts only, no pixels) runs per file in parallel, and the selector
makes the same decisions in the same order as the single-process build, so both write the same examples.
"""

from __future__ import annotations

import json

import apache_beam as beam
from etils import epath

from videopoet_jax.data import clip_folder

# Keys of a file's clips start at its place in build order times this (more clips than any file has).
KEY_STRIDE = 10**9


def _read(item: tuple[int, str, str, str], config: clip_folder.ClipFolderConfig):
  order, split, name, caption = item
  record, candidates = clip_folder.read_file(config, name, caption)
  return order, split, record, candidates


def _select(indexed: list, config: clip_folder.ClipFolderConfig) -> dict:
  """`{"kept": {file: [candidate index, ...]}, "summary": build summary}` over every file's record."""
  selector = clip_folder.ClipSelector(config)
  kept = {record.name: selector.select(record) for _, record in sorted(indexed, key=lambda x: x[0])}
  return {"kept": kept, "summary": selector.summary}


def _emit(item, selection: dict):
  """`(split, key, example)`: TFDS's Beam writer sorts an unshuffled split by integer key, so the key is the
  file's place in build order and the clip's in the file."""
  order, split, record, candidates = item
  for example in clip_folder.kept_examples(candidates, selection["kept"][record.name]):
    yield split, order * KEY_STRIDE + int(example["clip_index"]), example


class _SharedStage:
  """The part of the graph every split reads (built once per pipeline, on the first split's expansion)."""

  def __init__(self, config, files: list[tuple[str, str, str]], summary_path: str):
    self.config, self.files, self.summary_path = config, files, summary_path
    self._examples = {}

  def examples(self, pipeline: beam.Pipeline) -> beam.PCollection:
    """`(split, key, example)` of every kept clip."""
    if id(pipeline) not in self._examples:
      config = self.config
      read = (
        pipeline
        | "ListFiles" >> beam.Create([(order, *file) for order, file in enumerate(self.files)])
        | "Distribute" >> beam.Reshuffle()
        | "ReadFiles" >> beam.Map(_read, config)
      )
      selection = (
        read
        | "Records" >> beam.Map(lambda item: (item[0], item[2]))
        | "Gather" >> beam.combiners.ToList()
        | "Select" >> beam.Map(_select, config)
      )
      _ = (
        selection
        | "Summary" >> beam.Map(lambda s: json.dumps(s["summary"]))
        | "WriteSummary" >> beam.io.WriteToText(self.summary_path, shard_name_template="")
      )
      self._examples[id(pipeline)] = read | "Kept" >> beam.FlatMap(
        _emit, selection=beam.pvalue.AsSingleton(selection)
      )
    return self._examples[id(pipeline)]


def split_transforms(
  config: clip_folder.ClipFolderConfig, files: list[tuple[str, str, str]], summary_path: str
) -> dict[str, beam.PTransform]:
  """`{split: PTransform yielding (key, example)}` for `files` `[(split, file name, caption)]` in build
  order; the run writes the build summary (JSON) to `summary_path` (`read_summary` reads it back)."""
  stage = _SharedStage(config, files, summary_path)

  @beam.ptransform_fn
  def split_examples(root, split):
    return (
      stage.examples(root.pipeline)
      | "OfSplit" >> beam.Filter(lambda item, s: item[0] == s, split)
      | "KeyExample" >> beam.Map(lambda item: item[1:])
    )

  return {split: split_examples(split) for split in dict.fromkeys(f[0] for f in files)}


def read_summary(path: epath.Path) -> dict:
  """The build summary a Beam run wrote to `path`; the file is removed (the summary moves to the dataset's
  metadata)."""
  summary = json.loads(path.read_text())
  path.unlink()
  return summary
