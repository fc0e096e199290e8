"""ImageNet-style image folders: in memory or streamed."""

from gmnas_cli.data.imagenet import folder  # noqa: F401  (registers dataset=imagenet)
