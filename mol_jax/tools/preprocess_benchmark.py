"""Pre-processing throughput: this package vs a per-frame re-run of the official recipe.

  python -m mol_jax.tools.preprocess_benchmark [--raw_dir DIR] [--clips 12]
      [--workers 2] [--official_train_clips 3] [--json OUT]

Without --raw_dir, a small synthetic set (official MOL layout) is generated
in a temporary folder. Measured on the same raw clips:

* ours, 1 process and N processes: clips/s and the time split between
  reading, detection (HOG + 68 landmarks), alignment and flow.
* the official recipe, re-implemented here frame by frame from its
  description: cv2.imread (BGR), dlib on the RGB frame, per-frame alignment
  matrix, warpAffine of the colour frame, BGR -> gray, crop to 128, then
  TV-L1 on the cropped frames; a test clip is cropped once at (8, 8), a
  training clip at 5 random offsets (one TV-L1 run per crop).

It also reports how close the two are: aligned frames, landmarks, and the
flow (ours is computed once on the 144x144 frames and cropped later; the
official runs on each 128x128 crop).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import cv2
import numpy as np

from mol_jax.data import layouts
from mol_jax.data import faces
from mol_jax.data import preprocess
from mol_jax.data import synthetic


def _official_matrix(landmarks: np.ndarray) -> np.ndarray:
  """The official alignment, written out step by step with 3x3 matrices."""
  left = landmarks[36:42].mean(0)
  right = landmarks[42:48].mean(0)
  dx, dy = right - left
  length = np.sqrt(dx * dx + dy * dy)
  c, s = dx / length, dy / length
  rot = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float64)
  pts = np.stack([left, right, landmarks[30], landmarks[48], landmarks[54]])
  pts = (rot @ np.hstack([pts, np.ones((5, 1))]).T).T[:, :2]
  x0, y0 = pts.min(0)
  x1, y1 = pts.max(0)
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  half = 0.5 * 2.5 * max(x1 - x0, y1 - y0)
  scale = (144 - 1) / 2 / half
  box = np.array([[scale, 0, scale * (half - cx)], [0, scale, scale * (half - cy)],
                  [0, 0, 1]])
  return (box @ rot)[:2]


def official_clip(paths, detector, crops, tvl1):
  """One clip through the official per-frame recipe; returns (frames, flows, times)."""
  times = {'read': 0.0, 'detect': 0.0, 'align': 0.0, 'flow': 0.0}
  gray = []
  for path in paths:
    t = time.perf_counter()
    bgr = cv2.imread(path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    times['read'] += time.perf_counter() - t
    t = time.perf_counter()
    box = detector.detect(rgb)
    landmarks = detector.landmarks(rgb, box)
    times['detect'] += time.perf_counter() - t
    t = time.perf_counter()
    m = _official_matrix(landmarks.astype(np.float64))
    warped = cv2.warpAffine(bgr, m, (144, 144), flags=cv2.INTER_LINEAR,
                            borderValue=(128, 128, 128))
    gray.append(cv2.cvtColor(warped, cv2.COLOR_BGR2GRAY))
    times['align'] += time.perf_counter() - t
  gray = np.stack(gray)
  flows = []
  t = time.perf_counter()
  for dy, dx in crops:
    crop = gray[:, dy:dy + 128, dx:dx + 128]
    flows.append(np.stack([tvl1.calc(crop[i], crop[i + 1], None)
                           for i in range(7)]))
  times['flow'] += time.perf_counter() - t
  return gray, flows, times


def _jobs(raw_dir: str, clips: int) -> list[preprocess.ClipJob]:
  _, entries = layouts.find_videos('casme2', raw_dir)
  jobs = []
  for entry in entries:
    jobs += preprocess.plan_video(entry.folder, entry.video_id)
  return jobs[:clips]


def _split(results) -> dict[str, float]:
  total = {}
  for _, clip in results:
    for k, v in clip.timings.items():
      total[k] = total.get(k, 0.0) + v
  n = len(results)
  return {k: round(v / n, 4) for k, v in total.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--raw_dir', default=None,
                      help='official MOL layout <root>/<emotion>/<video>/')
  parser.add_argument('--clips', type=int, default=12)
  parser.add_argument('--workers', type=int, default=preprocess.default_num_workers())
  parser.add_argument('--official_train_clips', type=int, default=3)
  parser.add_argument('--json', default=None)
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    raw_dir = args.raw_dir
    if raw_dir is None:
      config = synthetic.SyntheticConfig(num_subjects=2, videos_per_class=2,
                                         min_frames=16, max_frames=20, seed=11)
      raw_dir = os.path.join(synthetic.generate(os.path.join(tmp, 'raw'), config),
                             'frames')
    jobs = _jobs(raw_dir, args.clips)
    n = len(jobs)
    report = {'clips': n, 'workers': args.workers, 'cpu_count': os.cpu_count()}
    print(f'{n} clips from {raw_dir}', flush=True)

    cv2.setNumThreads(1)
    t = time.perf_counter()
    ours = preprocess.run_jobs(jobs, num_workers=0)
    elapsed = time.perf_counter() - t
    report['ours_1_process'] = {'clips_per_s': round(n / elapsed, 3),
                                's_per_clip': _split(ours)}
    print('ours, 1 process:', report['ours_1_process'], flush=True)

    t = time.perf_counter()
    preprocess.run_jobs(jobs, num_workers=args.workers)
    elapsed = time.perf_counter() - t
    report[f'ours_{args.workers}_processes'] = {
        'clips_per_s': round(n / elapsed, 3),
        'note': 'includes starting the pool (imports + dlib model load)'}
    print(f'ours, {args.workers} processes:',
          report[f'ours_{args.workers}_processes'], flush=True)

    detector = faces.FaceDetector(upsample=1)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    times = {'read': 0.0, 'detect': 0.0, 'align': 0.0, 'flow': 0.0}
    frame_diff, epe = [], []
    t = time.perf_counter()
    official = []
    for job in jobs:
      gray, flows, clip_times = official_clip(job.paths, detector, [(8, 8)], tvl1)
      official.append((gray, flows))
      for k, v in clip_times.items():
        times[k] += v
    elapsed = time.perf_counter() - t
    report['official_test_clips'] = {
        'clips_per_s': round(n / elapsed, 3),
        's_per_clip': {k: round(v / n, 4) for k, v in times.items()}}
    print('official recipe, test clips (1 crop):',
          report['official_test_clips'], flush=True)
    for (_, clip), (gray, flows) in zip(ours, official):
      frame_diff.append(np.abs(clip.video[..., 0].astype(int) - gray).max())
      ours_flow = clip.flow[:, 8:136, 8:136].astype(np.float32)
      epe.append(np.linalg.norm(ours_flow - flows[0], axis=-1)[:, 16:112, 16:112].mean())
    report['agreement'] = {
        'max_gray_level_difference': int(max(frame_diff)),
        'flow_epe_px_centre_96': round(float(np.mean(epe)), 4)}
    print('agreement:', report['agreement'], flush=True)

    k = min(args.official_train_clips, n)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for job in jobs[:k]:
      crops = [tuple(rng.integers(0, 17, 2)) for _ in range(5)]
      official_clip(job.paths, detector, crops, tvl1)
    elapsed = time.perf_counter() - t
    report['official_train_clips'] = {'clips_per_s': round(k / elapsed, 3),
                                      'clips_measured': k}
    print('official recipe, training clips (5 crops):',
          report['official_train_clips'], flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(report, f, indent=1)
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  main()
