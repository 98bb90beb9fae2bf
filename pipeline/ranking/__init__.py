"""The leaderboard's library: find submissions, score them against answer keys, rank them."""
