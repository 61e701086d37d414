"""Training and evaluation: augmentation, trainer with checkpoints and resume, metrics and reports."""
