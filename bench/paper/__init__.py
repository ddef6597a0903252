"""Experiments with a paper's architecture and hyper-parameters, run on the paper's dataset."""
