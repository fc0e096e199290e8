"""Supernet training loop with per-epoch checkpoints and exact resume."""
