"""The demo with a flow head that learns: pre-training on exact motion, then the demo's LOSO.

`python -m mol_jax.main --config=configs/demo_flow.py --workdir=DIR` runs two
stages, each built and trained on first use and resumable:

1. `configs/flow_pretrain.py` into DIR/pretrain: the flow layers learn from
   the exact motion of a synthetic set generated from other seeds than the
   demo's subjects.
2. `configs/demo.py`'s four LOSO folds, each starting from that model
   (`config.init_from`, recorded in results.json), trained as the demo on
   the TV-L1 targets, as real data would be.

What departs from the official network: the small-displacement refinement
(`model.flow_refinement`, mol_jax/model/flow_refine.py) after the flow head,
which sees both frames at full resolution, and higher learning rates for
the flow layers (`optimizer.lr_multipliers`). docs/RESULTS.md ("The flow
head") gives the probe measurements behind each.
"""

from configs import demo
from configs import flow_pretrain


def get_config():
  config = demo.get_config()
  config.model.flow_refinement = True
  config.optimizer.lr_multipliers = 'flownet=10,flow_refine=10'
  config.pretrain = flow_pretrain.get_config()
  return config
