"""Self-supervised pretraining of a member's backbone on unlabelled cell images."""
