"""WBC Zoo: fine-tune, ensemble and rank image classifiers on white-blood-cell microscopy."""

__version__ = "0.1.0"
