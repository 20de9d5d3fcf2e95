"""Data layer: readers for the field's formats, dataset layouts, checks, splits and fingerprints."""
