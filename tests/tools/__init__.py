"""Tests of `mol_jax.tools`, one file per module."""
