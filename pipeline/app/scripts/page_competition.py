"""The Competition page (``pipeline.app.competition_page``), run after the entry script."""

from pipeline.app.competition_page import competition_page
from pipeline.app.selection import shared

competition_page(shared())
