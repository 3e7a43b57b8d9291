"""Image classifiers, one module per family; importing them registers them
(the Vision Transformer, ``vit``, included: it is an image classifier)."""

from apps.vision import alexnet, googlenet, lenet, mlp, resnet, vgg, vit

__all__ = ["alexnet", "googlenet", "lenet", "mlp", "resnet", "vgg", "vit"]
