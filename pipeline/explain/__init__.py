"""Looking inside members: Grad-CAM overlays and embedding maps."""
