"""Datasets: FER-2013 CSV and class-per-folder image trees, splits, augmentation."""
