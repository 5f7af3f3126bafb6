"""The self-paced "age" lambda: per-person pace that grows after each query round."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Pace"]


@dataclass(frozen=True)
class Pace:
    """Pace schedule: lambda starts at ``start``, grows by ``step`` per query round, capped at ``cap``.

    Defaults are the released code's (0.12, +0.08, 0.9). A person accepts a face
    in the self-paced step when its hinge loss is below the person's lambda, so
    lambda 0.12 means "score above 0.88" and 0.9 "score above 0.1".
    """

    start: float = 0.12
    step: float = 0.08
    cap: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.start <= self.cap:
            raise ValueError(f"pace needs 0 < start <= cap, got start={self.start!r}, cap={self.cap!r}")
        if self.step < 0:
            raise ValueError(f"pace step must be >= 0, got {self.step!r}")

    def at(self, query_rounds: int) -> float:
        """Lambda of a person after ``query_rounds`` query rounds."""
        if query_rounds < 0:
            raise ValueError(f"query_rounds must be >= 0, got {query_rounds!r}")
        return float(min(self.cap, self.start + self.step * query_rounds))

    def grow(self, lambdas: np.ndarray | float) -> np.ndarray:
        """Lambdas after one more query round (element-wise, capped)."""
        return np.minimum(self.cap, np.asarray(lambdas, dtype=np.float64) + self.step)
