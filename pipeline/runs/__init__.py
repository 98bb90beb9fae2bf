"""The output folder: its layout, metadata, submissions, checkpoints, manifest and tracking."""
