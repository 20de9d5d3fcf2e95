"""Engine: run directories, seeding, the Lightning Trainer and its callbacks, imbalance samplers."""
