"""mol_jax: MOL (micro-expression, optical flow, landmarks) in JAX/Flax."""

from mol_jax.inference import Predictor, from_checkpoint, from_official_weights, from_state_dict
from mol_jax.model.mol import MOL, create_model

__all__ = ['MOL', 'Predictor', 'create_model', 'from_checkpoint', 'from_official_weights',
           'from_state_dict']
__version__ = '0.1.0'
