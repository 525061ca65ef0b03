"""Test setup: fake CPU devices for sharding tests, golden data location."""

import os

# Sharding tests need several devices; on CPU XLA can fake them. This must
# happen before JAX initialises its backends.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
