"""The demo with a flow head that learns: pre-training on exact motion, then the demo's LOSO.

`python -m mol_jax.main --config=configs/demo_flow.py --workdir=DIR` runs two
stages, each built and trained on first use and resumable:

1. `configs/flow_pretrain.py` into DIR/pretrain: the flow layers learn from
   the exact motion of a synthetic set generated from other seeds than the
   demo's subjects.
2. `configs/demo.py`'s four LOSO folds, each starting from that model
   (`config.init_from`, recorded in results.json), trained as the demo on
   the TV-L1 targets, as real data would be, but with the flow layers at
   0.1x the schedule's learning rate. The pre-trained flow is better than
   those targets; training on them pulls it back towards their errors, the
   faster the higher the rate: the demo's 10x (there to move layers that
   start at zero) undoes the pre-training, 1x gives back part of it
   (docs/RESULTS.md, "Pre-training on exact motion", measures 10x, 1x,
   0.1x and no flow term).

The network is the demo's: the official one plus the small-displacement
refinement after the flow head (`model.flow_refinement`). docs/RESULTS.md
("The flow head") gives the measurements behind it.
"""

from configs import demo
from configs import flow_pretrain


def get_config():
  config = demo.get_config()
  config.pretrain = flow_pretrain.get_config()
  config.optimizer.lr_multipliers = 'flownet=0.1,flow_refine=0.1'
  return config
