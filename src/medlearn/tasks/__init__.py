"""Tasks: each has planner rules, a LightningModule, a predictor and an evaluator."""
