import numpy as np

from ram_core.attention_stats import box_hit_rates, objects_visited, step_diversity

# two objects side by side on a 100 x 50 photo: (class, x0, y0, x1, y1, difficult)
TWO = [(0, 0, 0, 50, 50, False), (1, 50, 0, 100, 50, False)]


def boxes_at(*centres, half=0.1):
    return np.array([[x - half, y - half, x + half, y + half] for x, y in centres])


def test_objects_visited_counts_distinct_objects_and_prefers_the_smallest_box():
    visited, hits = objects_visited(boxes_at((0.25, 0.5), (0.3, 0.5), (0.75, 0.5)), TWO, (100, 50))
    assert visited == {0, 1} and hits == 3
    visited, hits = objects_visited(boxes_at((0.25, 0.5), (0.3, 0.5)), TWO, (100, 50))
    assert visited == {0} and hits == 2
    nested = [(0, 0, 0, 100, 50, False), (1, 10, 10, 30, 30, False)]  # a small object on a big one
    assert objects_visited(boxes_at((0.2, 0.4)), nested, (100, 50))[0] == {1}


def test_step_diversity_tells_spread_steps_from_steps_on_one_object():
    n = 6
    sizes = [(100, 50)] * n
    objs = [TWO] * n
    spread = np.stack([boxes_at((0.25, 0.5), (0.75, 0.5))] * n)
    same = np.stack([boxes_at((0.25, 0.5), (0.2, 0.4))] * n)
    d_spread = step_diversity(spread, objs, sizes)
    d_same = step_diversity(same, objs, sizes)
    assert d_spread["objects_visited"] == 2 and d_spread["all_on_one_object"] == 0
    assert d_same["objects_visited"] == 1 and d_same["all_on_one_object"] == 100
    assert d_spread["visited_two_or_more"] == 100 and d_same["visited_two_or_more"] == 0
    # photos with a single object are left out
    assert step_diversity(spread, [[TWO[0]]] * n, sizes) == {"num_images": 0}


def test_other_photo_baseline_differs_when_steps_follow_the_photo():
    # objects alternate sides between photos; steps follow them, so on the neighbour they miss
    left = [(0, 0, 0, 30, 50, False), (1, 30, 0, 45, 50, False)]
    right = [(0, 55, 0, 70, 50, False), (1, 70, 0, 100, 50, False)]
    objs = [left, right] * 3
    steps = np.stack([boxes_at((0.15, 0.5), (0.38, 0.5)), boxes_at((0.62, 0.5), (0.85, 0.5))] * 3)
    d = step_diversity(steps, objs, [(100, 50)] * 6)
    assert d["objects_visited"] == 2 and d["objects_visited_other"] == 0
    assert box_hit_rates(steps, objs, [(100, 50)] * 6)["hit_rate"] == 100


def test_min_area_counts_only_objects_large_enough_to_look_at():
    # a big object and a tiny one (2 % of the photo): with min_area 0.05 the photo has one object
    # worth visiting and drops out; with a second big object it stays, and only the big ones count
    big, tiny, other_big = (0, 0, 0, 50, 50, False), (1, 90, 40, 100, 45, False), (2, 50, 0, 90, 40, False)
    n, sizes = 4, [(100, 50)] * 4
    steps = np.stack([boxes_at((0.25, 0.5), (0.2, 0.4))] * n)  # all on the big object
    assert step_diversity(steps, [[big, tiny]] * n, sizes)["all_on_one_object"] == 100
    assert step_diversity(steps, [[big, tiny]] * n, sizes, min_area=0.05) == {"num_images": 0}
    spread = np.stack([boxes_at((0.25, 0.5), (0.95, 0.85), (0.7, 0.4))] * n)  # big, tiny, other big
    d_all = step_diversity(spread, [[big, tiny, other_big]] * n, sizes)
    d_large = step_diversity(spread, [[big, tiny, other_big]] * n, sizes, min_area=0.05)
    assert d_all["objects_visited"] == 3 and d_all["objects"] == 3
    assert d_large["objects_visited"] == 2 and d_large["objects"] == 2 and d_large["all_on_one_object"] == 0
