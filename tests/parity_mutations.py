"""A pytest plugin that changes one setting of the training recipe, to show
that `tests/end_to_end/train_parity_test.py` notices (docs/RESULTS.md,
"Training parity"):

    MOL_PARITY_MUTATION=eps .venv/bin/python -m pytest -n 0 -p tests.parity_mutations \
        tests/end_to_end/train_parity_test.py

With a mutation set, the module is expected to FAIL. Mutations: of_weight and
ldm_weight x1.01, eps x10, weight_decay x2, momentum (BatchNorm) 0.1 -> 0.11.
Without MOL_PARITY_MUTATION the plugin does nothing. It is not collected as a
test (its name does not end in _test.py).
"""

import os

MUTATIONS = ('of_weight', 'ldm_weight', 'eps', 'weight_decay', 'momentum')


def pytest_configure(config):
  del config
  mutation = os.environ.get('MOL_PARITY_MUTATION', '')
  if not mutation:
    return
  if mutation not in MUTATIONS:
    raise ValueError(f'MOL_PARITY_MUTATION={mutation!r}; one of {MUTATIONS}')
  from tests.end_to_end import train_parity_test  # pylint: disable=import-outside-toplevel
  from mol_jax.model import layers  # pylint: disable=import-outside-toplevel
  recipe = train_parity_test.parity_config

  def mutated(ref):
    config = recipe(ref)
    if mutation == 'of_weight':
      config.loss.of_weight *= 1.01
    elif mutation == 'ldm_weight':
      config.loss.ldm_weight *= 1.01
    elif mutation == 'eps':
      config.optimizer.eps *= 10
    elif mutation == 'weight_decay':
      config.optimizer.weight_decay *= 2
    return config

  train_parity_test.parity_config = mutated
  if mutation == 'momentum':
    layers.running_update_weights.__defaults__ = (0.11,)
