"""The echo canceller's bulk-delay estimate: by how much the echo arrives later than the
reference says, from the cross-correlation of far and near block envelopes (docs/dsp.md, "Bulk
delay"). Pure numpy, fed one value per block of the canceller, so chunk-invariant like it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


class DelayEstimator:
    """Bulk delay from the cross-correlation of far and near block envelopes.

    Every ``every`` blocks it correlates the near RMS envelope of the last ``window`` blocks
    with the far envelope at lags 0..``max_lag`` blocks and reports the best lag when its
    normalized correlation is at least ``min_corr`` (else None: not enough far activity or
    no echo). Pure numpy; fed one value per block, so chunk-invariant like the kernel.
    """

    def __init__(self, max_lag: int, window: int = 500, every: int = 50,
                 min_corr: float = 0.5) -> None:
        self.max_lag = max_lag
        self.window = window
        self.every = every
        self.min_corr = min_corr
        size = window + max_lag
        self._far = np.zeros(size, np.float64)
        self._near = np.zeros(window, np.float64)
        self._filled = 0

    def push(self, far_env: F64, near_env: F64) -> None:
        n = far_env.shape[0]
        self._far = np.concatenate((self._far[n:], far_env))
        self._near = np.concatenate((self._near[n:], near_env))
        self._filled += n

    def estimate(self) -> tuple[int, float] | None:
        """(lag in blocks, correlation) or None."""
        if self._filled < self._far.shape[0]:
            return None
        w = self.window
        near = self._near - self._near.mean()
        nn = float(near @ near)
        if nn <= 0.0:
            return None
        # far segment aligned with the near window at lag l: far[max_lag - l :][:w]
        view = np.lib.stride_tricks.sliding_window_view(self._far, w)[::-1]  # row l = lag l
        seg = view - view.mean(axis=1, keepdims=True)
        ff = np.einsum("ij,ij->i", seg, seg)
        corr = (seg @ near) / np.sqrt(np.maximum(ff, 1e-30) * nn)
        lag = int(np.argmax(corr))
        if corr[lag] < self.min_corr or ff[lag] <= 0.0:
            return None
        return lag, float(corr[lag])
