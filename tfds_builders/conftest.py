"""pytest setup for the builder tests beside each builder."""

import os

# Build the tiny dummy sets in the test process: a process pool would cost
# more to start (each worker imports the package and loads the 100 MB dlib
# model) than the few clips take. The pool is tested in tests/.
os.environ.setdefault('MOL_JAX_NUM_WORKERS', '0')
