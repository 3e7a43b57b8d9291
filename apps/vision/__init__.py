"""Image classifiers, one module per family; importing them registers them."""

from apps.vision import alexnet, googlenet, lenet, mlp, resnet, vgg

__all__ = ["alexnet", "googlenet", "lenet", "mlp", "resnet", "vgg"]
