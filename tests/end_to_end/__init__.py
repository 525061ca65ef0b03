"""Tests of the whole product: learning, training parity against the official code,
the notebooks, the installed wheel, several processes and a resumed run."""
