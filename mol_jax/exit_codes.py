"""One error path for every user command (main, predict, explain, convert, tfds_build).

A command that fails prints one line on stderr, `error: <what>: <fix>`,
naming the file or field, and exits with the code of its kind of failure;
the traceback only with `--verbose`. The codes mean the same in every
command; docs/EXIT_CODES.md is their table, and each command's `--help`
lists its own with `summary`.
"""

from __future__ import annotations

import sys
import traceback

OK = 0
FAILED = 1  # the run itself failed: a non-finite loss, a build that broke
USAGE = 2  # bad flags, config or output folder
NO_INPUT = 3  # input or data missing or unreadable (a video, frames, a dataset, raw data)
NO_FACE = 4  # no face in any frame
TOO_FEW_FRAMES = 5  # fewer than 8 frames with a face
BAD_WEIGHTS = 6  # a checkpoint or weight file missing, damaged or of the wrong shape
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell reports it); training resumes on a rerun

MEANINGS = {
    OK: 'done',
    FAILED: 'the run failed (a non-finite loss, a build that broke)',
    USAGE: 'bad flags, config or output folder',
    NO_INPUT: 'input or data missing or unreadable',
    NO_FACE: 'no face found, or every clip skipped',
    TOO_FEW_FRAMES: 'fewer than 8 frames with a face',
    BAD_WEIGHTS: 'checkpoint or weights missing or unusable',
    INTERRUPTED: 'interrupted (Ctrl-C; the same command resumes)',
}


def summary(codes: tuple[int, ...]) -> str:
  """The `--help` line of a command that exits with `codes`."""
  return ('exit codes: ' + ', '.join(f'{c} {MEANINGS[c]}' for c in codes) +
          ' (docs/EXIT_CODES.md)')


def report(message: str, code: int, error: BaseException | None = None,
           verbose: bool = False) -> int:
  """Prints the one line (after the traceback of `error` when `verbose`);
  returns `code` for the command to exit with."""
  if error is not None and verbose:
    traceback.print_exception(error)
  print(f'error: {message}', file=sys.stderr, flush=True)
  return code


def fail(message: str, code: int, error: BaseException | None = None,
         verbose: bool = False):
  """`report`, then exit with `code`."""
  sys.exit(report(message, code, error, verbose))
