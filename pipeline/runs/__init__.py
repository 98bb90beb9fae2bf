"""What a run leaves on disk: the output folder's layout, the one writer of an entry's files,
metadata, submissions, a member's recipe, checkpoints, manifest and tracking."""
