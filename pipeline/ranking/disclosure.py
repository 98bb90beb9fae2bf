"""What the leaderboard may show while a competition runs.

Before the organiser's reveal, nothing ties an image of a competition's test set to its label,
on any set of any entry (member, ensemble, adapted, upload): no gallery of its misclassified
images, no confusion matrix nor per-class table. The images are recognised by content, by the
pixel fingerprints the competition key records, not by set name, folder or id: the same images
scored as another dataset's cross-lab set, or copied under other names, are hidden too. A
damaged settings file counts as a running competition. Where the content cannot be checked (no
bundle yet, a damaged key: every set; a set whose images are not on the server: that set) it is
hidden. Private competition scores are the competition board's business
(``competition.board`` adds them only once revealed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.ranking.competition import datasets, load_key, running
from pipeline.ranking.fingerprints import set_fingerprints

HIDDEN = "(hidden in competition mode)"


@dataclass(frozen=True)
class Disclosure:
    """``hiding``: a competition runs and is not yet revealed; ``secret``: the pixel
    fingerprints of its test images (None: unknown, and every set is hidden)."""

    hiding: bool
    secret: frozenset[str] | None = None

    def shows_truth(self, images: frozenset[str] | None) -> bool:
        """Whether per-image or per-class truth of a set whose images have these fingerprints
        (None: not readable here) may be shown."""
        if not self.hiding:
            return True
        return self.secret is not None and images is not None and self.secret.isdisjoint(images)


def disclosure(out: Path) -> Disclosure:
    if not running(out):
        return Disclosure(hiding=False)
    return Disclosure(hiding=True, secret=competition_images(out))


def competition_images(out: Path) -> frozenset[str] | None:
    """The fingerprints of every competition's test images; None when there is no key yet or
    one cannot be read (a key made before fingerprints were recorded is fingerprinted here)."""
    found: set[str] = set()
    try:
        keys = [load_key(out, dataset) for dataset in datasets(out)]
    except ValueError:  # a damaged key
        return None
    for key in keys:
        prints = key.fingerprints or set_fingerprints(
            Path(key.source["root"]), (image for image, _ in key.images.values())
        )
        if not prints:
            return None
        found.update(prints)
    return frozenset(found) or None


def without_paths(meta: dict) -> dict:
    """A ``meta.json`` without the data folders: every set's root and the command that named
    them (where the test images live says which public set to match them against)."""
    sets = {
        name: source and {**source, "root": HIDDEN} for name, source in meta.get("sets", {}).items()
    }
    return {**meta, "sets": sets, "command": HIDDEN}
