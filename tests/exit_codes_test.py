"""The exit codes are defined once and their table lists each of them."""

import os
import re

from mol_jax import exit_codes
from tests import REPO


def test_every_code_has_a_meaning_and_a_row_of_the_table():
  codes = {v for k, v in vars(exit_codes).items() if k.isupper() and isinstance(v, int)}
  assert codes == set(exit_codes.MEANINGS)
  table = open(os.path.join(REPO, 'docs', 'EXIT_CODES.md')).read()
  rows = {int(m) for m in re.findall(r'^\| (\d+) \|', table, flags=re.MULTILINE)}
  assert rows == codes


def test_summary_names_the_codes_and_the_table():
  line = exit_codes.summary((exit_codes.OK, exit_codes.NO_FACE))
  assert line == 'exit codes: 0 done, 4 no face found, or every clip skipped (docs/EXIT_CODES.md)'
