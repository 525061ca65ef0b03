"""How good are MOL's flow and landmarks? Measured on synthetic_me against the truth.

    python -m mol_jax.tools.flow_report --checkpoint DIR [--dataset synthetic_me/default_per_clip]
        [--data_dir D] [--subjects sy01,sy02] [--max_clips N] [--results_md docs/RESULTS.md]

For every clip of the chosen subjects of a built `synthetic_me` set:

* the true flow between consecutive aligned frames: the generator's exact
  displacement (`mol_jax.data.synthetic.stored_true_flow`) mapped through the
  clip's alignment matrices. The TFDS records do not hold the matrices, so
  the raw frames are read again (the builder's cached copy under
  `<data_dir>/downloads/synthetic_me_raw_*`, or the same set regenerated
  from its seed) and the clip is aligned again with the builder's options;
  the re-aligned frames must equal the record's frames, which proves it is
  the same clip and the same matrices;
* the end-point error EPE = mean over pixels and frame pairs of
  |flow - true flow| (pixels of the 128x128 crop the model sees), for MOL's
  flow head, for the TV-L1 flow the records hold (the training target),
  and for zero flow (= the mean true motion);
* the landmark error NME = mean over points of |p - reference| divided by
  the reference's inter-pupil distance (distance of the eye centres), for
  frames 1..7 as the model predicts them: MOL against the dlib landmarks of
  the records (the training target) and against the true landmarks (dlib's
  landmarks of the subject's still face moved by the generator's exact
  motion, `synthetic.position_at`), and dlib against the true ones.

The table goes to stdout and between `<!-- flow-report:start -->` and
`<!-- flow-report:end -->` in the file `--results_md` names, when given (the
markers are appended when absent; nothing is written by default).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import json
import os
import shlex
import sys
from typing import Any, Sequence

import numpy as np

from mol_jax import clip_format
from mol_jax import files
from mol_jax import inference
from mol_jax import metrics
from mol_jax.data import builder
from mol_jax.data import faces
from mol_jax.data import input_pipeline
from mol_jax.data import preprocess
from mol_jax.data import synthetic

START_MARKER = '<!-- flow-report:start -->'
END_MARKER = '<!-- flow-report:end -->'


def epe(flow: np.ndarray, reference: np.ndarray) -> float:
  """End-point error: mean over every pixel (and pair, clip) of |flow - reference|.

  Args:
    flow, reference: [..., H, W, 2] displacements in pixels (broadcastable).
  """
  return float(np.mean(metrics.end_point_error(np.asarray(flow, np.float64),
                                               np.asarray(reference, np.float64))))


def landmark_nme(points: np.ndarray, reference: np.ndarray) -> float:
  """Mean point error over inter-pupil distance of the reference.

  Args:
    points, reference: [..., 68, 2] (x, y) pixels. Each [68, 2] set is
      normalised by its reference's inter-pupil distance, then averaged.
  """
  return float(np.mean(metrics.landmark_nme(np.asarray(points, np.float64),
                                            np.asarray(reference, np.float64))))


def _builder_config(dataset: str):
  config = builder.builder_config(dataset)
  if config is None or not hasattr(config, 'generator'):
    raise ValueError(f'{dataset}: not a config of tfds_builders/synthetic_me')
  return config


def generator_config(dataset: str) -> synthetic.SyntheticConfig:
  """The generator config of a synthetic_me builder config (from its builder)."""
  return _builder_config(dataset).generator


def align_mode(dataset: str) -> str:
  """The alignment the builder config uses ('per_frame' or 'per_clip')."""
  return _builder_config(dataset).align


def data_root(dataset: str, data_dir: str | None) -> str:
  """The TFDS data_dir holding `dataset` (the one given, or TFDS's default)."""
  # <root>/<name>/<config>/<version>
  return os.path.dirname(os.path.dirname(os.path.dirname(
      input_pipeline.built_dir(dataset, data_dir))))


def find_raw_dir(dataset: str, data_dir: str | None, raw_dir: str | None = None) -> str:
  """The generated frames the dataset was built from (regenerated when missing)."""
  if raw_dir:
    synthetic.load_manifest(raw_dir)
    return raw_dir
  config = generator_config(dataset)
  wanted = json.loads(json.dumps(dataclasses.asdict(config)))
  downloads = os.path.join(data_root(dataset, data_dir), 'downloads')
  for candidate in sorted(glob.glob(os.path.join(downloads, 'synthetic_me_raw_*'))):
    try:
      if synthetic.load_manifest(candidate)['config'] == wanted:
        return candidate
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
      continue
  target = os.path.join(downloads, f'synthetic_me_raw_flow_report_{config.seed}_'
                        f'{config.num_subjects}x{config.videos_per_class}')
  print(f'regenerating the raw frames of {dataset} in {target}', flush=True)
  return synthetic.generate(target, config)


class Truth:
  """True flow and landmarks of synthetic clips (cached subjects and motions)."""

  def __init__(self, raw_dir: str, config: synthetic.SyntheticConfig, align: str):
    self.raw_dir = raw_dir
    self.config = config
    self.options = preprocess.PreprocessOptions(align=align)
    self.detector = faces.FaceDetector(self.options.upsample)
    manifest = synthetic.load_manifest(raw_dir)
    self.videos = {v['video']: v for v in manifest['videos']}
    self.subject_names = sorted({v['subject'] for v in manifest['videos']})
    self._subjects: dict[str, synthetic.Subject] = {}

  def subject(self, name: str) -> synthetic.Subject:
    if name not in self._subjects:
      self._subjects[name] = synthetic.make_subject(self.subject_names.index(name), self.config)
    return self._subjects[name]

  def clip(self, video_id: str, frame_indices: Sequence[int], record_video: np.ndarray
           ) -> dict[str, np.ndarray]:
    """True flow [7, 128, 128, 2] and landmarks [7, 68, 2] in crop pixels.

    Raises:
      ValueError: the re-aligned frames differ from the record's.
    """
    info = self.videos[video_id]
    folder = os.path.join(self.raw_dir, 'frames', info['label'], video_id)
    paths = preprocess.list_frames(folder)
    images = preprocess.read_clip([paths[i] for i in frame_indices])
    aligned = preprocess.align_clip(images, self.detector, self.options, folder)
    difference = np.abs(aligned.gray.astype(int) - record_video[..., 0].astype(int)).max()
    if difference > 1:
      raise ValueError(
          f'{video_id}: the frames in {self.raw_dir} re-aligned with {self.options.align} '
          f'alignment differ from the record by up to {difference} gray levels; is this the '
          'raw set the dataset was built from? Pass it with --raw_dir.')
    motion = synthetic.Motion.load(os.path.join(self.raw_dir, 'truth', video_id + '.npz'))
    window = (slice(None), slice(clip_format.CROP_OFFSET, clip_format.CROP_OFFSET + clip_format.CROP_SIZE), slice(clip_format.CROP_OFFSET, clip_format.CROP_OFFSET + clip_format.CROP_SIZE))
    flow = synthetic.stored_true_flow(motion, frame_indices, aligned.geometry)[window]
    base = self.subject(info['subject']).landmarks
    landmarks = synthetic.stored_true_landmarks(motion, frame_indices, base,
                                                aligned.geometry)[1:] - clip_format.CROP_OFFSET
    return {'flow': flow, 'landmarks': landmarks.astype(np.float32)}


def evaluate(predictor, dataset: str = 'synthetic_me/default_per_clip',
             data_dir: str | None = None, subjects: Sequence[str] | None = None,
             max_clips: int | None = None, raw_dir: str | None = None,
             batch_size: int = 8) -> dict[str, Any]:
  """Errors of MOL's flow and landmarks, and of the training targets, vs the truth.

  Returns:
    {'dataset', 'subjects', 'num_clips', 'metrics': {name: mean over clips},
     'per_subject': {subject: {name: mean}}}.
  """
  if not dataset.startswith('synthetic_me/'):
    raise ValueError(f'{dataset}: the true flow is known for synthetic_me only')
  all_subjects = input_pipeline.list_subjects(dataset, data_dir)
  subjects = list(subjects or all_subjects)
  unknown = sorted(set(subjects) - set(all_subjects))
  if unknown:
    raise ValueError(f'{dataset} has no subjects {unknown}; it has {all_subjects}')
  truth = Truth(find_raw_dir(dataset, data_dir, raw_dir), generator_config(dataset),
                align_mode(dataset))
  rows: list[dict[str, Any]] = []
  for subject in subjects:
    pairs = list(input_pipeline.evaluation_clips(dataset, data_dir, [subject],
                                                 max_clips_per_subject=max_clips))
    examples, inputs = [p[0] for p in pairs], [p[1] for p in pairs]
    out = predictor.predict_batched(np.stack([x['video'] for x in inputs]), batch_size)
    for k, (example, model_in) in enumerate(zip(examples, inputs)):
      video_id = example['video_id']
      true = truth.clip(video_id, [int(i) for i in example['frame_indices']], example['video'])
      target_flow, target_landmarks = model_in['flow'], model_in['landmarks']
      rows.append({
          'subject': subject, 'video_id': video_id,
          'epe_mol_true': epe(out['flow'][k], true['flow']),
          'epe_tvl1_true': epe(target_flow, true['flow']),
          'epe_zero_true': epe(0.0, true['flow']),
          'epe_mol_tvl1': epe(out['flow'][k], target_flow),
          'nme_mol_true': landmark_nme(out['landmarks'][k], true['landmarks']),
          'nme_dlib_true': landmark_nme(target_landmarks, true['landmarks']),
          'nme_mol_dlib': landmark_nme(out['landmarks'][k], target_landmarks),
      })
  names = [k for k in rows[0] if k not in ('subject', 'video_id')]

  def means(selected):
    return {n: float(np.mean([r[n] for r in selected])) for n in names}

  return {'dataset': dataset, 'subjects': subjects, 'num_clips': len(rows),
          'metrics': means(rows),
          'per_subject': {s: means([r for r in rows if r['subject'] == s]) for s in subjects},
          'clips': rows}


def markdown(result: dict[str, Any], checkpoint: str, command: str,
             training: dict[str, Any] | None = None, note: str = '') -> str:
  """The RESULTS.md section (without markers)."""
  m = result['metrics']
  date = datetime.date.today().isoformat()
  training = training or {}
  trained = ''
  if training.get('dataset'):
    trained = f" (trained on `{training['dataset']}`"
    if training.get('num_train_steps'):
      trained += f", {training['num_train_steps']} steps"
    if training.get('held_out_subject'):
      trained += f", subject {training['held_out_subject']} held out"
    trained += ')'
  return '\n'.join([
      '## Flow and landmark quality on synthetic_me',
      '',
      f"Checkpoint `{checkpoint}`{trained} on `{result['dataset']}`, subjects "
      f"{', '.join(result['subjects'])} ({result['num_clips']} clips, 7 frame pairs each, "
      f'128x128 evaluation crop), measured {date}. EPE: mean end-point error over pixels '
      'and pairs, in pixels. NME: mean landmark error over inter-pupil distance, frames 1-7. '
      '"True": the generator\'s exact motion (landmarks: dlib on the still face, moved '
      'exactly); see `mol_jax/tools/flow_report.py`.',
      '',
      '| estimate | vs true | vs training target |',
      '|---|---|---|',
      f"| MOL flow (EPE, px) | {m['epe_mol_true']:.3f} | {m['epe_mol_tvl1']:.3f} (TV-L1) |",
      f"| TV-L1 flow, the training target (EPE, px) | {m['epe_tvl1_true']:.3f} | - |",
      f"| zero flow = mean true motion (EPE, px) | {m['epe_zero_true']:.3f} | - |",
      f"| MOL landmarks (NME) | {m['nme_mol_true']:.4f} | {m['nme_mol_dlib']:.4f} (dlib) |",
      f"| dlib landmarks, the training target (NME) | {m['nme_dlib_true']:.4f} | - |",
      '',
  ] + ([note, ''] if note else []) + ['Command:', '', '```bash', command, '```'])


def write_section(path: str, text: str) -> None:
  """Replaces the text between the markers of `path` (appends markers if absent)."""
  content = ''
  if os.path.exists(path):
    with open(path) as f:
      content = f.read()
  block = f'{START_MARKER}\n{text.rstrip()}\n{END_MARKER}'
  start, end = content.find(START_MARKER), content.find(END_MARKER)
  if start >= 0 and end > start:
    content = content[:start] + block + content[end + len(END_MARKER):]
  else:
    if start >= 0 or end >= 0:
      raise ValueError(f'{path}: only one of {START_MARKER} / {END_MARKER} is present; fix '
                       'the file by hand')
    content = content.rstrip('\n') + ('\n\n' if content else '') + block + '\n'
  files.write_text(path, content)


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = argparse.ArgumentParser(prog='python -m mol_jax.tools.flow_report',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--checkpoint', required=True, help='model directory')
  parser.add_argument('--dataset', default='synthetic_me/default_per_clip')
  parser.add_argument('--data_dir', default='', help="TFDS data dir ('' = TFDS default)")
  parser.add_argument('--subjects', default='',
                      help='comma-separated; default: the held-out subject a fold model\'s '
                      'metadata names (training writes it), else all')
  parser.add_argument('--max_clips', type=int, default=0, help='per subject (0: all)')
  parser.add_argument('--raw_dir', default='', help='generated set the dataset was built from')
  parser.add_argument('--build', action='store_true', help='build the dataset when missing')
  parser.add_argument('--results_md', default='',
                      help="markdown file to update ('' = none)")
  parser.add_argument('--json', default='', help='also write the full result here')
  parser.add_argument('--note', default='',
                      help='a sentence for the section, e.g. how the checkpoint was trained')
  args = parser.parse_args(argv)

  data_dir = args.data_dir or None
  if args.build:
    sources.ensure_built([args.dataset], data_dir, build_if_missing=True)
  predictor = inference.from_checkpoint(args.checkpoint)
  subjects = [s.strip() for s in args.subjects.split(',') if s.strip()]
  if not subjects and predictor.metadata.get('held_out_subject'):
    subjects = [predictor.metadata['held_out_subject']]
  result = evaluate(predictor, args.dataset, data_dir, subjects or None,
                    args.max_clips or None, args.raw_dir or None)
  command = 'python -m mol_jax.tools.flow_report ' + ' '.join(shlex.quote(a) for a in argv)
  text = markdown(result, args.checkpoint, command, predictor.metadata, args.note)
  print(text)
  for subject, values in result['per_subject'].items():
    print(subject, ' '.join(f'{k}={v:.4f}' for k, v in values.items()))
  if args.results_md:
    write_section(args.results_md, text)
    print(f'updated {args.results_md}')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
