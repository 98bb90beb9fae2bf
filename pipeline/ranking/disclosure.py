"""What the leaderboard may show while a competition runs.

Before the organiser's reveal, nothing that ties test images to their labels is shown, for any
entry (member, ensemble, adapted, upload): no gallery of misclassified test images (their true
classes), no confusion matrix nor per-class table on the test set. A damaged settings file
hides too. Private competition scores are the competition board's business
(``competition.board`` adds them only once revealed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.ranking.competition import SET, load_settings


@dataclass(frozen=True)
class Disclosure:
    """``hiding``: a competition runs and is not yet revealed."""

    hiding: bool

    def shows_truth(self, set_name: str) -> bool:
        """Whether per-image or per-class truth of ``set_name`` may be shown."""
        return not (self.hiding and set_name == SET)


def disclosure(out: Path) -> Disclosure:
    try:
        settings = load_settings(out)
    except (OSError, ValueError):  # a damaged settings file: err on the side of hiding
        return Disclosure(hiding=True)
    return Disclosure(hiding=settings is not None and not settings.revealed)
