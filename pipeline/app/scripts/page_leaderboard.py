"""The Leaderboard page (``pipeline.app.board``), run after the entry script."""

from pipeline.app.board import leaderboard_page
from pipeline.app.selection import shared

leaderboard_page(shared())
