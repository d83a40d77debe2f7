"""JSON that never holds NaN or Infinity: such values are written as null.

Python's json writes NaN as a bare `NaN`, which is not JSON (browsers, jq and most parsers refuse the
file); allow_nan=False instead raises mid-write.  Every file RAM Studio writes for others to read
(report.json, predictions, progress, logs, checkpoint metadata) goes through dumps() here.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """value with every non-finite float replaced by None (dicts, lists and tuples walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return finite(value.item())  # a numpy or torch scalar
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps with NaN and infinities as null (never the invalid bare NaN)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
