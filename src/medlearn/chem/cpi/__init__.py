"""Compound-protein interaction: data (DeepDTA affinity-matrix layout, pair CSVs), features, models, metrics."""
