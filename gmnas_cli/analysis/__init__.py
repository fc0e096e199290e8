"""Analyses of trained supernets and architectures: paper Table 2, architecture figures."""
