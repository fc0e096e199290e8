"""gmnas: GM-NAS (Hu et al., ICLR 2022) as a resumable, tested command-line toolkit."""

__version__ = "0.1.0"
