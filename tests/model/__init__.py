"""Tests of `mol_jax.model`, one file per module."""
