"""The Details page (``pipeline.app.details``), run after the entry script."""

from pipeline.app.details import details_page
from pipeline.app.selection import shared

details_page(shared())
