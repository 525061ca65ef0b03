"""Research tools, apart from the product: benchmarks and diagnostics.

Each is a `python -m mol_jax.tools.<name>` command; none is imported by the
training, prediction or data code.
"""
