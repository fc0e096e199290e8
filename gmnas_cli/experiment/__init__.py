"""The experiment directory and its partition tree."""
