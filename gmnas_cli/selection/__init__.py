"""Leaf selection beyond a plain sort: successive halving (paper Appendix C)."""
