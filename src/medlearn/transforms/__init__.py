"""Transform presets composed from MONAI transforms."""
