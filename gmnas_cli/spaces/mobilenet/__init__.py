"""The ProxylessNAS MobileNet space (Cai et al. 2019; GM-NAS paper 4.3): supernet, mixed MBConv ops, stand-alone network."""

from gmnas_cli.spaces.mobilenet import space  # noqa: F401  (registers space=mobilenet)
