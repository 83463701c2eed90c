"""A small paired dataset the package makes itself: synthetic facades.

Each pair is one A|B file in the facades layout (A = a rendered "photo" on the left, B = its
colour-coded label map on the right; labels -> photo is ``BtoA``), drawn procedurally from a
seed, so the demo needs no download and carries no third-party licence (the images are generated
by this code, Apache-2.0 like the rest of the project).

The rendering is learnable in a few minutes on a CPU yet not trivial: every class has its own
texture and shading (brick-like wall noise, glass with a sky reflection gradient, window frames,
panelled doors, a lit sky band), so a model that learned nothing is visibly different from one
that did.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Label colours, as in the CMP facade label maps (approximately).
LABELS = {
    "background": (0, 0, 170),
    "wall": (0, 85, 255),
    "window": (0, 170, 255),
    "door": (170, 0, 0),
    "frame": (255, 255, 0),
    "balcony": (255, 85, 0),
}


def _render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photo for a class-index map (H, W) -> uint8 (H, W, 3)."""
    h, w = labels.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    photo = np.zeros((h, w, 3), np.float32)
    wall_tone = rng.uniform(0.55, 0.8) * np.array([1.0, 0.85, 0.7])
    # Wall: warm tone, fine noise, horizontal mortar lines every 8 px, light from the top.
    noise = rng.normal(0, 0.04, (h, w, 1))
    mortar = ((yy.astype(int) % 8) == 0)[..., None] * -0.12
    light = (1.1 - 0.3 * yy / h)[..., None]
    photo_wall = np.clip(wall_tone * light + noise + mortar, 0, 1)
    # Sky: blue gradient.
    sky = np.stack([0.55 + 0.3 * yy / h, 0.7 + 0.2 * yy / h, np.full_like(yy, 0.95)], -1)
    # Glass: dark blue with a diagonal reflection.
    refl = 0.15 * np.sin((xx + yy) / 6.0)[..., None]
    glass = np.clip(np.array([0.1, 0.15, 0.3]) + refl, 0, 1)
    frame = np.array([0.92, 0.92, 0.88])
    door = np.clip(np.array([0.35, 0.2, 0.1]) + 0.08 * ((xx.astype(int) % 10) < 2)[..., None], 0, 1)
    balcony = np.clip(np.array([0.3, 0.3, 0.32]) + 0.25 * ((xx.astype(int) % 6) < 2)[..., None], 0, 1)
    layers = [sky, photo_wall, glass, door, np.broadcast_to(frame, (h, w, 3)), balcony]
    for index, layer in enumerate(layers):
        mask = labels == index
        photo[mask] = np.broadcast_to(layer, (h, w, 3))[mask]
    return (photo * 255).round().astype(np.uint8)


def _layout(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random facade: sky band, wall, a grid of framed windows, a door, maybe balconies."""
    labels = np.ones((size, size), np.int64)  # wall
    sky = int(rng.uniform(0.05, 0.2) * size)
    labels[:sky] = 0
    rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    top, bottom = sky + size // 16, size - size // 4
    cell_h, cell_w = (bottom - top) / rows, size / cols
    win_h, win_w = cell_h * rng.uniform(0.45, 0.7), cell_w * rng.uniform(0.35, 0.6)
    has_balcony = rng.random() < 0.5
    for r in range(rows):
        for c in range(cols):
            y0 = int(top + r * cell_h + (cell_h - win_h) / 2)
            x0 = int(c * cell_w + (cell_w - win_w) / 2)
            y1, x1 = int(y0 + win_h), int(x0 + win_w)
            labels[y0 - 2:y1 + 2, x0 - 2:x1 + 2] = 4  # frame
            labels[y0:y1, x0:x1] = 2  # window
            if has_balcony and r > 0:
                labels[y1 + 2:y1 + 2 + max(2, size // 40), x0 - 4:x1 + 4] = 5
    door_w = int(size * rng.uniform(0.1, 0.18))
    door_x = int(rng.uniform(0.1, 0.9 - door_w / size) * size)
    labels[size - size // 5:, door_x:door_x + door_w] = 3
    return labels


def label_colours(labels: np.ndarray) -> np.ndarray:
    palette = np.array(list(LABELS.values()), np.uint8)
    return palette[labels]


def make_pair(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One (photo, label map) pair, each uint8 (size, size, 3)."""
    rng = np.random.default_rng(seed)
    labels = _layout(size, rng)
    return _render(labels, rng), label_colours(labels)


def write_pairs(out_dir: Path, *, count: int, size: int = 256, seed: int = 0) -> list[Path]:
    """Write ``count`` A|B files (photo | labels) named 0000.png, 0001.png, ... into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        photo, labels = make_pair(size, seed * 100_003 + i)
        path = out_dir / f"{i:04d}.png"
        Image.fromarray(np.concatenate([photo, labels], axis=1)).save(path)
        paths.append(path)
    return paths
