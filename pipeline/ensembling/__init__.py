"""Ensembles of zoo members: vote, soft, weighted, greedy selection and stacking."""
