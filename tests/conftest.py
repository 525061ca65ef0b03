"""Test setup: fake CPU devices for sharding tests, one compilation cache."""

import atexit
import os
import shutil
import tempfile

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
