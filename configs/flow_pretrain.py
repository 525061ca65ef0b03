"""Pre-training MOL's flow layers on exact motion: the first stage of configs/demo_flow.py.

`synthetic_me/flow_pretrain` is generated from another seed than the demo's
subjects (other faces, other motions; none of the demo's held-out clips),
with 1-5 px action-unit motion. The flow term is trained against the
records' exact motion (`loss.flow_target='true_flow'`) instead of the TV-L1
targets, which are themselves 0.1 px off on these clips, and by the
per-pixel end-point error (`loss.flow_loss='epe'`), the measure it is
scored by, instead of the official squared error: it ends well closer to
the exact motion on held-out faces (docs/RESULTS.md, "Pre-training on
exact motion", measures both). The network and
the flow layers' learning rates are the demo's (the small-displacement
refinement), so the demo's folds start from this model; 2 flow pairs per
step give the flow layers twice the demo's supervision per step. Subject sy01 is
held out: its score is the pre-training's own check (`WORKDIR/pretrain`).
The classification and landmark terms train as in the demo, so every layer
the demo's folds load has seen faces.
"""

from configs import demo


def get_config():
  config = demo.get_config()
  config.dataset = 'synthetic_me/flow_pretrain'
  config.folds = 'sy01'
  config.loss.flow_target = 'true_flow'
  config.loss.flow_loss = 'epe'
  config.loss.flow_pairs_per_step = 2
  # The refinement reads Lucas-Kanade estimates and learns fast: 300 steps
  # of batch 4 (2,400 pairs against the exact motion); docs/RESULTS.md has its curve.
  config.num_train_steps = 300
  config.checkpoint_every_steps = 100
  # The held-out subject's curve, to see where the stage stops gaining.
  config.eval_every_steps = 100
  return config
