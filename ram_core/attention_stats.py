"""How well the attention boxes land on objects, measured against ground-truth boxes.

hit rate: the share of steps whose box centre falls inside a ground-truth box (any class present in
the image).  To tell looking at objects apart from a layout that is merely centre-biased, the same
boxes are also scored against *another* photo's objects (each image paired with the next one):
a fixed layout scores the same on both, attention that follows the photo scores higher on its own.
"""

from __future__ import annotations

import numpy as np


def centre_hits(box_norm: np.ndarray, objects: list[tuple], size: tuple[int, int] | None) -> np.ndarray:
    """box_norm (K, 4) fractions; objects: (class, x0, y0, x1, y1, difficult) in pixels -> (K,) bool."""
    if not objects or size is None:
        return np.zeros(len(box_norm), bool)
    w, h = size
    cx = (box_norm[:, 0] + box_norm[:, 2]) / 2 * w
    cy = (box_norm[:, 1] + box_norm[:, 3]) / 2 * h
    obj = np.array([o[1:5] for o in objects], dtype=np.float64)  # (M, 4)
    inside = ((cx[:, None] >= obj[None, :, 0]) & (cx[:, None] <= obj[None, :, 2])
              & (cy[:, None] >= obj[None, :, 1]) & (cy[:, None] <= obj[None, :, 3]))
    return inside.any(1)


def box_hit_rates(box_norms: np.ndarray, boxes: list[list[tuple]], sizes: list) -> dict[str, float]:
    """box_norms (N, K, 4).  Returns own-photo and other-photo hit rates (percent), and per step."""
    n = len(box_norms)
    keep = [i for i in range(n) if boxes[i] and sizes[i] is not None]
    if len(keep) < 2:
        return {"hit_rate": float("nan"), "hit_rate_other_photo": float("nan"), "per_step": []}
    own = np.stack([centre_hits(box_norms[i], boxes[i], sizes[i]) for i in keep])  # (n, K)
    # another photo's objects, scaled to this photo's frame (boxes are fractions of the image)
    other = []
    for j, i in enumerate(keep):
        o = keep[(j + 1) % len(keep)]
        (wi, hi), (wo, ho) = sizes[i], sizes[o]
        moved = [(b[0], b[1] / wo * wi, b[2] / ho * hi, b[3] / wo * wi, b[4] / ho * hi, b[5]) for b in boxes[o]]
        other.append(centre_hits(box_norms[i], moved, sizes[i]))
    other = np.stack(other)
    return {
        "hit_rate": float(own.mean() * 100),
        "hit_rate_other_photo": float(other.mean() * 100),
        "per_step": [float(v * 100) for v in own.mean(0)],
        "per_step_other_photo": [float(v * 100) for v in other.mean(0)],
        "num_images": len(keep),
    }


def objects_visited(box_norm: np.ndarray, objects: list[tuple], size: tuple[int, int] | None) -> tuple[set[int], int]:
    """(indices of the distinct objects the K step centres land on, number of steps that land on one).

    A centre inside several boxes is given to the smallest of them (the most specific object: a cup
    on a table is the cup)."""
    if not objects or size is None:
        return set(), 0
    w, h = size
    cx = (box_norm[:, 0] + box_norm[:, 2]) / 2 * w
    cy = (box_norm[:, 1] + box_norm[:, 3]) / 2 * h
    obj = np.array([o[1:5] for o in objects], dtype=np.float64)  # (M, 4)
    area = (obj[:, 2] - obj[:, 0]) * (obj[:, 3] - obj[:, 1])
    inside = ((cx[:, None] >= obj[None, :, 0]) & (cx[:, None] <= obj[None, :, 2])
              & (cy[:, None] >= obj[None, :, 1]) & (cy[:, None] <= obj[None, :, 3]))  # (K, M)
    hit = inside.any(1)
    chosen = np.where(inside, area[None, :], np.inf).argmin(1)
    return {int(j) for j in chosen[hit]}, int(hit.sum())


# Objects of at least this share of the photo are "large" (on the 18 x 18 map of a 576 photo, about
# 4 x 4 cells).  Most photos whose steps all land on one object have only one such object beside
# small ones (a distant person, a bottle on a table): step_diversity(..., min_area=LARGE_OBJECT_AREA)
# asks the question again of the photos with two or more objects that a step could look at.
LARGE_OBJECT_AREA = 0.05


def _large(objects: list[tuple], size: tuple[int, int], min_area: float) -> list[tuple]:
    if min_area <= 0:
        return objects
    w, h = size
    return [o for o in objects if (o[3] - o[1]) * (o[4] - o[2]) >= min_area * w * h]


def step_diversity(box_norms: np.ndarray, boxes: list[list[tuple]], sizes: list, min_objects: int = 2,
                   min_area: float = 0.0) -> dict:
    """Do the steps find different objects?  Over photos with >= min_objects annotated objects (only the
    objects covering >= min_area of the photo count, min_area a fraction; 0 = all):

    objects_visited        mean number of distinct objects the K step centres land on
    objects_visited_other  the same boxes laid on another such photo (a fixed layout scores alike)
    objects                mean number of annotated objects on those photos
    all_on_one_object      share of photos (%) whose steps that land on an object all land on the same one
    visited_two_or_more    share of photos (%) where the steps visit at least two objects
    """
    boxes = [_large(b, sizes[i], min_area) if sizes[i] is not None else b for i, b in enumerate(boxes)]
    keep = [i for i in range(len(box_norms)) if sizes[i] is not None and len(boxes[i]) >= min_objects]
    if len(keep) < 2:
        return {"num_images": len(keep)}
    own, other, single, counts = [], [], [], []
    for j, i in enumerate(keep):
        visited, hits = objects_visited(box_norms[i], boxes[i], sizes[i])
        own.append(len(visited))
        single.append(hits > 0 and len(visited) == 1)
        counts.append(len(boxes[i]))
        o = keep[(j + 1) % len(keep)]
        (wi, hi), (wo, ho) = sizes[i], sizes[o]
        moved = [(b[0], b[1] / wo * wi, b[2] / ho * hi, b[3] / wo * wi, b[4] / ho * hi, b[5]) for b in boxes[o]]
        other.append(len(objects_visited(box_norms[i], moved, sizes[i])[0]))
    own_a = np.array(own)
    return {
        "num_images": len(keep),
        "objects": float(np.mean(counts)),
        "objects_visited": float(own_a.mean()),
        "objects_visited_other": float(np.mean(other)),
        "all_on_one_object": float(np.mean(single) * 100),
        "visited_two_or_more": float((own_a >= 2).mean() * 100),
    }
