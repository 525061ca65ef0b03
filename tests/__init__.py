"""The project's tests, laid out as the package they test.

`tests/<module>_test.py` tests `mol_jax/<module>.py`; `tests/data/`,
`tests/model/` and `tests/tools/` mirror `mol_jax/data/`, `mol_jax/model/` and
`mol_jax/tools/`; `tests/end_to_end/` runs the whole product (learning,
training parity, the notebooks, the installed wheel, several processes, a
resumed run). The helpers that several files share stay here (`golden`,
`tiny_config`, `random_weights`, `fake_me`, `fake_prediction`), imported as
`from tests import golden`: with this `__init__.py` pytest puts the
repository's root on `sys.path`, which also makes `configs` importable.
"""

import os

# The repository's root: the tests read its files and run its commands there.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
