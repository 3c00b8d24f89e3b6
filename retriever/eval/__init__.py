"""Measuring: BEIR runs and their metrics, STS, fusion tuning on a split."""
