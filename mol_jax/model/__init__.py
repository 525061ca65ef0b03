"""The MOL network: the paper's blocks as pure functions behind thin `nnx` modules.

`mol.MOL` composes `layers`/`conv` (convolutions, grouped BatchNorm), `fcc`
(transformer-style fully-connected convolution), `ccc` (graph-style channel
correspondence convolution), `flow_head` (the FlowNetC-like flow branch) and
`heads` (landmarks, micro-expression). `initialisers` holds the training
choices of starting weights, which are not part of the network.
"""

from mol_jax.model.mol import MOL, abstract_model, create_model

__all__ = ['MOL', 'abstract_model', 'create_model']
