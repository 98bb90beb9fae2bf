"""Training members: recipes, optimisers, the training loop, its jobs and its bill (plan)."""
