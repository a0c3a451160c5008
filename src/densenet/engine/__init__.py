"""Training engine: configuration, the training loop, checkpoints, evaluation and prediction."""
