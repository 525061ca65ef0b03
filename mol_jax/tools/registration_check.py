"""How often registration holds on real faces: `python -m mol_jax.tools.registration_check`.

For every face photograph given (folders of images; scikit-image's astronaut
and matplotlib's Grace Hopper portrait are always included), and its mirror
image and half-size copy, dlib's landmarks are aligned as a clip's onset
frame is, then:

- `exact warp folds`: whether the exact warp onto the reference turns a
  triangle over, for the current mesh (`registration.MESH_POINTS`) and for
  the inner-face mesh used before (points 17-67);
- the same for the landmarks edited into a blink, an open mouth, a smile and
  a head turned sideways (the expressions and poses of a talking face);
- `strength`: what `registration.Registration` uses (1.0 = exact);
- with `--videos`, each photograph made into a 24-frame video with the
  synthetic set's motion (`synthetic.make_motion`) and prepared as
  `mol_jax.predict` prepares a video, `align='registered'`: clips prepared.

No photograph is fetched here: pass folders you have (for example the
`tests/test_images/` of the `face_recognition` 1.3.0 source distribution).
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import tempfile
from typing import Sequence

import cv2
import matplotlib
import numpy as np
from scipy import spatial
from skimage import data

from mol_jax import clip_format
from mol_jax import video as video_lib
from mol_jax.data import faces
from mol_jax.data import registration
from mol_jax.data import synthetic

MESHES = {'current': registration.MESH_POINTS, 'inner_face_17_67': np.arange(17, 68)}


def photographs(folders: Sequence[str]) -> dict[str, np.ndarray]:
  """{name: RGB uint8} of the image files in `folders`, plus the two packaged portraits."""
  paths = [os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')]
  for folder in folders:
    paths += sorted(glob.glob(os.path.join(folder, '*')))
  images = {'skimage.astronaut': data.astronaut()}
  for path in paths:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is not None:
      images[os.path.basename(path)] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
  return images


def expressions(aligned: np.ndarray) -> dict[str, np.ndarray]:
  """[68, 2] aligned landmarks edited into a blink, an open mouth, a smile, a turned head."""
  ipd = float(clip_format.inter_pupil_distance(aligned))
  blink = aligned.copy()
  for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
    blink[[upper, lower]] = (aligned[upper] + aligned[lower]) / 2
  mouth = aligned.copy()
  mouth[[56, 57, 58, 65, 66, 67], 1] += 0.4 * ipd
  mouth[[55, 59], 1] += 0.2 * ipd
  smile = aligned.copy()
  smile[[48, 54], 1] -= 0.15 * ipd
  smile[[48, 54], 0] += [-0.1 * ipd, 0.1 * ipd]
  turned = aligned.copy()
  offset = turned[:, 0] - aligned[27:31, 0].mean()
  turned[:, 0] -= np.where(offset > 0, 0.5 * offset, 0.0)
  return {'blink': blink, 'open_mouth': mouth, 'smile': smile, 'turned_head': turned}


def exact_warp_folds(aligned: np.ndarray, mesh_points: np.ndarray) -> bool:
  """Whether the exact warp of these onset landmarks folds a mesh on `mesh_points`."""
  anchors = registration.border_anchors(clip_format.STORED_SIZE)
  reference = registration.reference_shape()[mesh_points]
  triangles = spatial.Delaunay(np.concatenate([reference, anchors])).simplices
  strength = registration.fold_free_strength(reference, reference, aligned[mesh_points],
                                             triangles, anchors)
  return strength < 1.0


def photo_video(image: np.ndarray, landmarks: np.ndarray, path: str, label: str) -> None:
  """Writes a 24-frame video of `image` moved by a synthetic micro-expression."""
  config = synthetic.SyntheticConfig(min_frames=24, max_frames=24, frame_size=image.shape[0])
  scale = float(np.linalg.norm(faces.alignment_matrix(landmarks)[:, 0]))
  person = synthetic.Subject('photo', image.astype(np.float32), landmarks, scale)
  rng = np.random.default_rng(0)
  motion, _ = synthetic.make_motion(person, label, 24, config, rng)
  basis = synthetic.grid_basis(motion, *image.shape[:2])
  frames = [np.clip(synthetic.render(person.image, motion, t, basis), 0, 255).astype(np.uint8)
            for t in range(motion.num_frames)]
  synthetic.write_video_file(path, np.stack(frames))


def main(argv: Sequence[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(prog='python -m mol_jax.tools.registration_check',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('folders', nargs='*', help='folders of face photographs')
  parser.add_argument('--videos', action='store_true',
                      help='also prepare a synthetic-motion video of every photograph')
  parser.add_argument('--out', default='', help='write the counts as JSON here')
  args = parser.parse_args(argv)
  detector = faces.FaceDetector(upsample=1)
  counts = collections.Counter()
  lowest_strength = 1.0
  workdir = tempfile.mkdtemp()
  for name, photo in photographs(args.folders).items():
    for variant, image in (('', photo), (':mirror', photo[:, ::-1].copy()),
                           (':half', cv2.resize(photo, None, fx=0.5, fy=0.5,
                                                interpolation=cv2.INTER_AREA))):
      box = detector.detect(image)
      if box is None:
        counts['no_face'] += 1
        continue
      raw = detector.landmarks(image, box).astype(np.float64)
      aligned = faces.transform_points(raw, faces.alignment_matrix(raw))
      cases = dict(expressions(aligned), photo=aligned)
      for case, landmarks in cases.items():
        counts[f'{case}/faces'] += 1
        for mesh, points in MESHES.items():
          counts[f'{case}/folds/{mesh}'] += exact_warp_folds(landmarks, points)
        strength = registration.Registration(landmarks).strength
        lowest_strength = min(lowest_strength, strength)
        counts[f'{case}/exact_registration'] += strength == 1.0
      if args.videos and not variant:
        path = os.path.join(workdir, f'{len(counts)}.avi')
        photo_video(image, raw, path, 'positive')
        counts['videos'] += 1
        try:
          prepared = video_lib.prepare_video(path, align='registered', max_clips=0)
          counts['videos/prepared'] += 1
          counts['videos/clips'] += prepared.num_clips
        except video_lib.VideoError as e:
          print(f'{name}: {e}')
  result = {'counts': dict(sorted(counts.items())), 'lowest_strength': lowest_strength}
  print(json.dumps(result, indent=1))
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == '__main__':
  main()
