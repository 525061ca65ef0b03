"""Test setup: fake CPU devices for sharding tests, one compilation cache, and
under CI no skip that is not on the allow-list."""

import atexit
import os
import shutil
import tempfile

import pytest

# Sharding tests need several devices; on CPU XLA can fake them. This must
# happen before JAX initialises its backends.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')

# Many tests compile the same steps of the tiny test config (and their
# subprocesses inherit the environment): a persistent cache for this run
# compiles each once. Its own folder, so nothing carries over between runs.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='mol_jax_test_xla_cache_')
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')


# CI installs every test extra and the golden data is in the repository, so a
# skip there is a missing dependency or a broken checkout, never intended:
# under CI=true it fails, unless the test is listed here with its reason.
ALLOWED_SKIPS_IN_CI: dict[str, str] = {}


def _fail_unallowed_skip(report) -> None:
  if not report.skipped or not os.environ.get('CI') or hasattr(report, 'wasxfail'):
    return
  if report.nodeid in ALLOWED_SKIPS_IN_CI:
    return
  longrepr = report.longrepr
  reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
  report.outcome = 'failed'
  report.longrepr = (f'skipped under CI=true ({reason}); CI installs every test extra '
                     "(pip install -e '.[test]'), so this is a missing dependency or file: "
                     'install it, or list the test in tests/conftest.py ALLOWED_SKIPS_IN_CI '
                     'with the reason')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # pylint: disable=unused-argument
  outcome = yield
  _fail_unallowed_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # pylint: disable=unused-argument
  outcome = yield
  _fail_unallowed_skip(outcome.get_result())


@pytest.fixture
def refuse_writes_in(monkeypatch):
  """`refuse_writes_in(folder)`: `tempfile.mkstemp` in `folder` fails as on a
  read-only mount. Mode bits cannot show that: root writes through them, and
  CI runs as root."""
  mkstemp = tempfile.mkstemp

  def refuse(folder):
    def refusing(*args, dir=None, **kwargs):  # pylint: disable=redefined-builtin
      if dir is not None and os.path.samefile(dir, folder):
        raise PermissionError(13, 'Permission denied', str(dir))
      return mkstemp(*args, dir=dir, **kwargs)
    monkeypatch.setattr(tempfile, 'mkstemp', refusing)
  return refuse
