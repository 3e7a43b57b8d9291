"""The one way in: datasets (`load`) and input pipelines (`pipeline`)."""

from apps.data.datasets import DatasetError, DatasetInfo, describe, load
from apps.data.folders import UnreadableImagesError
from apps.data.images import pipeline

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "UnreadableImagesError",
    "describe",
    "load",
    "pipeline",
]
