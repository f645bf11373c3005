"""SyntheticScenes: procedural street-like scenes with CamVid's 11 classes.

Large textured regions (sky, building, road, pavement, trees), thin structures (poles, fences)
and small objects (signs, cars, pedestrians, bicyclists): the same mix of easy and hard classes
that makes fusion matter on CamVid. Used by the unit tests and as the announced fallback when
CamVid cannot be had.
"""

from __future__ import annotations

import cv2
import numpy as np

from fusionlab.datasets.base import ArraySegmentation
from fusionlab.datasets.camvid import CamVid

SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)

# Base RGB colour of each class; every scene jitters them and adds texture.
_BASE_COLOURS = np.array([[150, 180, 220], [140, 90, 70], [200, 200, 170], [90, 90, 95],
                          [170, 160, 140], [60, 120, 50], [230, 200, 40], [120, 110, 150],
                          [180, 30, 40], [230, 150, 120], [40, 140, 200]], dtype=np.float32)


class SyntheticScenes(ArraySegmentation):
    """Procedural street scenes, deterministic from ``seed``, labelled like CamVid.

    Scene ``i`` depends only on ``(seed, i)``, so the first scenes of ``SyntheticScenes(10, ...)``
    and ``SyntheticScenes(100, ...)`` with the same seed are identical.

    Args:
        n: number of scenes.
        size: (H, W) in pixels, each at least 32.
        seed: the random seed.
        augment: as in ``CamVid``.

    Scenes are drawn at ``size``, so their labels are never resized: samples carry no
    ``"eval_mask"`` and ``eval_size`` is ``size``.

    Shape:
        ``ds[i]["image"]`` float32 (3, H, W), ``ds[i]["mask"]`` int64 (H, W), labels 0..10.

    Raises:
        ValueError: ``n`` not an integer >= 1, or ``size`` not two integers >= 32 pixels.
    """

    CLASSES = CamVid.CLASSES
    PALETTE = CamVid.PALETTE
    THIN_CLASSES = CamVid.THIN_CLASSES

    def __init__(self, n: int = 64, size: tuple[int, int] = (96, 128), seed: int = 0,
                 augment: bool = False):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(not isinstance(s, (int, np.integer)) or s < 32 for s in size)):
            raise ValueError(f"size must be (H, W) with integers >= 32, got {size!r}")
        self.size, self.seed = (int(size[0]), int(size[1])), seed
        scenes = [render_scene(self.size, np.random.default_rng([seed, i])) for i in range(n)]
        images = np.stack([s[0] for s in scenes])  # (n, H, W, 3)
        masks = np.stack([s[1] for s in scenes])  # (n, H, W)
        super().__init__(images, masks, augment)


def render_scene(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene: returns RGB uint8 (H, W, 3) and labels uint8 (H, W)."""
    h, w = size
    mask = np.empty((h, w), np.uint8)
    horizon = int(h * rng.uniform(0.3, 0.5))
    mask[:horizon] = SKY
    mask[horizon:] = ROAD
    kerb = int(h * rng.uniform(0.6, 0.75))
    # pavement: a wedge on each side below the horizon
    for side in (0, 1):
        reach = int(w * rng.uniform(0.15, 0.35))
        x0, x1 = (0, reach) if side == 0 else (w - reach, w)
        pts = np.array([[x0, kerb], [x1, horizon], [x1 if side == 0 else x0, h],
                        [x0 if side == 0 else x1, h]], np.int32)
        cv2.fillPoly(mask, [pts], PAVEMENT)
    # buildings: blocks standing on the horizon
    x = int(rng.integers(0, w // 6))
    while x < w:
        bw = int(w * rng.uniform(0.12, 0.3))
        top = int(horizon * rng.uniform(0.05, 0.7))
        if rng.random() < 0.8:
            mask[top:horizon + 2, x:x + bw] = BUILDING
        x += bw + int(rng.integers(0, w // 10))
    # trees: blobs around the horizon
    for _ in range(rng.integers(1, 4)):
        c = (int(rng.integers(0, w)), int(horizon * rng.uniform(0.5, 1.1)))
        axes = (int(w * rng.uniform(0.05, 0.14)), int(h * rng.uniform(0.08, 0.2)))
        cv2.ellipse(mask, c, axes, 0, 0, 360, TREE, -1)
    # fence: thin rails and posts along one pavement
    if rng.random() < 0.7:
        y = int(kerb - h * 0.05)
        x0, x1 = sorted(rng.integers(0, w, 2))
        for dy in (0, int(h * 0.05)):
            cv2.line(mask, (int(x0), y - dy), (int(x1), y - dy), FENCE, 1)
        for px in range(int(x0), int(x1), max(3, w // 30)):
            cv2.line(mask, (px, y - int(h * 0.07)), (px, y), FENCE, 1)
    # cars on the road
    for _ in range(rng.integers(0, 4)):
        cw, ch = int(w * rng.uniform(0.08, 0.2)), int(h * rng.uniform(0.06, 0.14))
        cx, cy = int(rng.integers(0, w - cw)), int(rng.integers(horizon, h - ch))
        cv2.rectangle(mask, (cx, cy), (cx + cw, cy + ch), CAR, -1)
    # poles with signs
    for _ in range(rng.integers(1, 5)):
        px = int(rng.integers(0, w))
        base = int(rng.integers(horizon, h))
        top = int(base - h * rng.uniform(0.3, 0.6))
        cv2.line(mask, (px, top), (px, base), POLE, int(rng.integers(1, 3)))
        if rng.random() < 0.6:
            s = max(2, int(h * rng.uniform(0.03, 0.06)))
            cv2.rectangle(mask, (px - s, top), (px + s, top + s), SIGN, -1)
    # pedestrians and bicyclists: small upright shapes
    for cls in (PEDESTRIAN, BICYCLIST):
        for _ in range(rng.integers(0, 3)):
            ph = int(h * rng.uniform(0.08, 0.16))
            cx, by = int(rng.integers(0, w)), int(rng.integers(horizon + ph, h))
            cv2.ellipse(mask, (cx, by - ph // 2), (max(1, ph // 6), ph // 2), 0, 0, 360, cls, -1)
            if cls == BICYCLIST:
                r = max(2, ph // 5)
                cv2.circle(mask, (cx - r, by - r), r, cls, 1)
                cv2.circle(mask, (cx + r, by - r), r, cls, 1)
    return _paint(mask, rng), mask


def _paint(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour each class with a jittered base colour and class-specific texture."""
    h, w = mask.shape
    colours = np.clip(_BASE_COLOURS + rng.normal(0, 15, _BASE_COLOURS.shape), 0, 255)
    image = colours[mask]  # (H, W, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = np.sin(xx * rng.uniform(0.5, 1.2)) * np.sin(yy * rng.uniform(0.5, 1.2))
    texture = {BUILDING: 25 * (stripes > 0.3), TREE: rng.normal(0, 25, (h, w)),
               ROAD: rng.normal(0, 6, (h, w)), SKY: -40 * yy / h}
    for cls, t in texture.items():
        image[mask == cls] += np.asarray(t, np.float32)[mask == cls, None]
    image += rng.normal(0, 8, image.shape)  # sensor noise
    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    return np.clip(image, 0, 255).astype(np.uint8)
