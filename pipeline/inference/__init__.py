"""Trained members loaded back: inputs and features, test-time adaptation, Grad-CAM, embeddings."""
