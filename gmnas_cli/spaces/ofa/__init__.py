"""The OFA MobileNetV3 elastic space (Cai et al. 2020; GM-NAS paper 4.3) and its MAC counts."""

from gmnas_cli.spaces.ofa import space  # noqa: F401  (registers space=ofa_mbv3)
