"""Tests of `mol_jax.data`, one file per module."""
