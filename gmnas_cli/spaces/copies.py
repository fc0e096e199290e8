"""Network copies side by side in the channel dimension: how GM scores all of an edge's ops in one
pass (``criterion.batched_ops=channels``, ``criteria/gm/fast.py``) on spaces whose supernets have
``Supernet.forward_suffix_copies`` (the DARTS cell space, ``spaces/darts/grouped.py``)."""

from __future__ import annotations

import torch


class Copies:
    """``r`` copies of a network side by side in the channel dimension (GM scoring of all of an
    edge's ops in one pass, ``criteria/gm/fast.py``): a tensor holds copy 0's channels, then copy
    1's, ...; convolutions run with ``r`` times the groups. ``params`` maps ``id(p)`` of the
    parameters whose gradient is wanted per copy to a leaf ``[r, *p.shape]`` used in their place
    (its gradient row i is copy i's); other parameters are shared by the copies as they are."""

    def __init__(self, r: int, params: dict[int, torch.Tensor]) -> None:
        self.r = r
        self.params = params

    def weight(self, p: torch.Tensor) -> torch.Tensor:
        """``p`` for each copy, stacked along the first (output-channel) dimension."""
        rep = self.params.get(id(p))
        if rep is not None:
            return rep.reshape(self.r * p.shape[0], *p.shape[1:])
        return p.repeat(self.r, *([1] * (p.dim() - 1))) if self.r > 1 else p


ONE = Copies(1, {})
