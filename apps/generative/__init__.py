"""Generative models: the GAN model, DCGAN and the MLP GAN; importing registers them.

>>> import apps.generative
>>> gan = apps.build("dcgan", input_shape=(28, 28, 1), latent_dim=100)
>>> gan.compile(d_steps=1, loss="bce")
"""

from apps.generative import dcgan, mlp_gan
from apps.generative.blocks import SelfAttention2D
from apps.generative.gan import GAN, LOSSES

__all__ = ["GAN", "LOSSES", "SelfAttention2D", "dcgan", "mlp_gan"]
