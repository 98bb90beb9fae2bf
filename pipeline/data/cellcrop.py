"""Cell-centred crops: find the white cell by its nucleus stain and crop a square around it.

Whole frames (LISC) and crops at other magnifications show the cell at another scale and place
than PBC's centred crops. ``find_cell`` locates the cell (numpy in, box out); ``cell_crop`` cuts a
square around it in which the cell box fills ``fraction`` of the side, the fraction measured on
PBC (``DEFAULT_CELL_FRACTION``), so both sides of a cross-lab comparison see cells at one scale.
A frame with no cell, or with several, falls back to today's centre crop and says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

CROP_MODES = ("centre", "cell")
# Side of the found cell box relative to the image side on real PBC images: median 0.417 on 600
# random ones (quartiles 0.34, 0.50), 0.411 on 600 drawn evenly from the classes (0.33, 0.49;
# ``python -m pipeline.cropsheet --measure --limit 600 pbc=pbc:PATH`` repeats it).
DEFAULT_CELL_FRACTION = 0.42

# What a decoded image's crop came from; the last two are the fallbacks that get counted.
FOUND, MASK, CENTRE, NO_CELL, SEVERAL = "found", "mask", "centre", "no cell", "several cells"
FALLBACKS = (NO_CELL, SEVERAL)

WORK_SIDE = 256  # the finder runs at this short side: fast, and thresholds stay scale-free
STAIN_FLOOR = 20.0  # nuclei score well above this on PBC, LISC, BCCD and Tecom, red cells below
MIN_AREA = 0.002  # a nucleus covers at least this share of the frame; platelets and specks less
RIVAL = 0.4  # another stained group at least this large (vs the largest) is a second cell
CELL_MARGIN = 1.2  # the stained nucleus box grown to the cell (cytoplasm around it)


@dataclass(frozen=True)
class CropSpec:
    """How images are cropped to a square before resizing: ``centre`` or ``cell``."""

    mode: str = "centre"
    fraction: float = DEFAULT_CELL_FRACTION  # cell mode: cell box side / crop side

    def __post_init__(self) -> None:
        if self.mode not in CROP_MODES:
            raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, not {self.mode!r}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"cell_fraction must lie in (0, 1], not {self.fraction}")

    @property
    def tag(self) -> str:
        """A short name for cache files (no dot: it would read as a suffix): ``cell0p42``."""
        return "centre" if self.mode == "centre" else f"cell{self.fraction:g}".replace(".", "p")


@dataclass(frozen=True)
class Detection:
    """The cell box ``(x0, y0, x1, y1)`` in pixels (None when not found) and how it was found."""

    box: tuple[int, int, int, int] | None
    status: str


def stain_map(rgb: np.ndarray) -> np.ndarray:
    """Nucleus stain per pixel: purple (red and blue above green) weighted by darkness (low
    green), so dark nuclei score high while pale red cells, even lavender ones, pink granules
    and the background score low under MGG, Wright and Giemsa alike."""
    f = rgb.astype(np.float32)
    purple = (f[..., 0] + f[..., 2]) / 2 - f[..., 1]
    return purple * (1 - f[..., 1] / 255)


def find_cell(rgb: np.ndarray, mask: np.ndarray | None = None) -> Detection:
    """The white cell of an RGB uint8 image: the expert ``mask`` (any non-background value) if
    given, else the one large group of nucleus-stained pixels."""
    if mask is not None:
        box = _mask_box(mask)
        if box is not None:
            return Detection(box, MASK)
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / min(h, w))
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    stained = _stained(small)
    groups = _groups(stained)
    if not groups or groups[0][0] < MIN_AREA * stained.size:
        return Detection(None, NO_CELL)
    if len(groups) > 1 and groups[1][0] >= RIVAL * groups[0][0]:
        return Detection(None, SEVERAL)
    x0, y0, x1, y1 = groups[0][1]
    cx, cy = (x0 + x1) / 2 / scale, (y0 + y1) / 2 / scale
    half = max(x1 - x0, y1 - y0) / 2 / scale * CELL_MARGIN
    box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    return Detection(box, FOUND)


def _stained(rgb: np.ndarray) -> np.ndarray:
    """Binary nucleus mask: Otsu on the stain map, never below the floor (on a frame that is
    mostly red cells Otsu splits cells from background, not nuclei from cells)."""
    stain = cv2.GaussianBlur(stain_map(rgb), (5, 5), 0)
    clipped = np.clip(stain, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(clipped, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    binary = (stain > max(otsu, STAIN_FLOOR)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)


def _groups(stained: np.ndarray) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Stained pixels grouped into cells, largest first: (stained area, box). Lobes of one
    nucleus (neutrophils) lie closer than a fraction of the nucleus size and are joined."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(stained, connectivity=8)
    if n <= 1:
        return []
    largest = int(stats[1:, cv2.CC_STAT_AREA].max())
    reach = max(3, int(0.5 * np.sqrt(largest)) | 1)
    joined = cv2.dilate(stained, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (reach, reach)))
    n, group_labels = cv2.connectedComponents(joined, connectivity=8)
    groups = []
    for g in range(1, n):
        ys, xs = np.nonzero((group_labels == g) & (stained > 0))
        if len(xs):
            groups.append(
                (len(xs), (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
            )
    return sorted(groups, key=lambda item: -item[0])


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Box of the pixels that differ from the mask's most common value (its background), so
    masks drawn white-on-black and black-on-white both work."""
    flat = mask.reshape(mask.shape[0], mask.shape[1], -1).max(axis=2)
    values, counts = np.unique(flat, return_counts=True)
    ys, xs = np.nonzero(flat != values[counts.argmax()])
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def crop_square(rgb: np.ndarray, detection: Detection, fraction: float) -> np.ndarray:
    """The square around the detected cell in which it fills ``fraction`` of the side, padded
    with the median colour of the image's edge (its background) where it leaves the frame;
    without a cell, the centre square."""
    h, w = rgb.shape[:2]
    if detection.box is None:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return rgb[top : top + side, left : left + side]
    x0, y0, x1, y1 = detection.box
    side = max(2, round(max(x1 - x0, y1 - y0) / fraction))
    left, top = round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2)
    pad = max(0, -left, -top, left + side - w, top + side - h)
    if pad:
        fill = [int(v) for v in np.median(_border(rgb), axis=0)]
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
    return rgb[top + pad : top + pad + side, left + pad : left + pad + side]


def cell_crop(
    rgb: np.ndarray, fraction: float, mask: np.ndarray | None = None
) -> tuple[np.ndarray, Detection]:
    """``crop_square`` of ``find_cell``: the crop and how its cell was found."""
    detection = find_cell(rgb, mask)
    return crop_square(rgb, detection, fraction), detection


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many crops were placed each way, by status name."""
    return dict(sorted(Counter(statuses).items()))


def _border(rgb: np.ndarray) -> np.ndarray:
    """The pixels of the outermost rows and columns, ``(N, 3)``."""
    return np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
