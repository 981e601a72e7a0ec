"""A metric learned from reviewers' labels: a linear map fitted on reviewed defect vectors of one station that
pulls defects of the same type together and pushes types apart, for label suggestions.

Reviewed regions are few (tens to hundreds) and their vectors wide (a few hundred dimensions), so the map is linear
discriminant analysis with a shrunk within-type covariance (Ledoit-Wolf, scikit-learn's
``LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")``): in its space each type's spread is about the
unit sphere, and the distance between two defects is how many of those spreads apart they are. Similarity is the
Gaussian kernel of that distance, ``exp(-d^2 / 2)``, in (0, 1], which the suggestion vote weighs as it weighs
cosine similarities. The learned state is two arrays (no pickle)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from linewatch.errors import LinewatchError

MIN_REVIEWS = 20  # reviewed examples before a metric is fitted
MIN_TYPES = 2  # and the defect types among them


class ReviewMetric:
    """Fit on (n, d) vectors and their n type labels; ``transform`` maps vectors into the learned space and
    ``similarity`` compares images given as lists of their vectors (the best pair counts)."""

    def __init__(self, min_reviews: int = MIN_REVIEWS, min_types: int = MIN_TYPES):
        self.min_reviews = min_reviews
        self.min_types = min_types
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None  # (d, k), k <= types - 1

    @staticmethod
    def enough(labels: Sequence[str], min_reviews: int = MIN_REVIEWS, min_types: int = MIN_TYPES) -> bool:
        return len(labels) >= min_reviews and len(set(labels)) >= min_types

    def fit(self, x: np.ndarray, labels: Sequence[str]) -> ReviewMetric:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        x = np.asarray(x, dtype=np.float64)
        labels = np.asarray(labels)
        if x.ndim != 2 or len(x) != len(labels):
            raise LinewatchError(f"a metric needs one label per vector: {x.shape} vectors, {len(labels)} labels")
        if not self.enough(list(labels), self.min_reviews, self.min_types):
            raise LinewatchError(
                f"a metric needs {self.min_reviews} reviewed defects of {self.min_types} types or more: "
                f"got {len(labels)} of {len(set(labels.tolist()))}"
            )
        with warnings.catch_warnings():  # a type reviewed once has no spread of its own: the shrinkage covers it
            warnings.simplefilter("ignore", UserWarning)
            lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x, labels)
        k = min(len(lda.classes_) - 1, x.shape[1])
        self.mean_ = x.mean(0).astype(np.float32)
        self.components_ = np.ascontiguousarray(lda.scalings_[:, :k], dtype=np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.components_ is None:
            raise LinewatchError("the metric is not fitted")
        return (np.asarray(x, dtype=np.float32) - self.mean_) @ self.components_

    def similarity(self, queries: Sequence[np.ndarray], gallery: Sequence[np.ndarray]) -> np.ndarray:
        """(len(queries), len(gallery)) kernel similarity of the closest pair of vectors of each two images."""
        g = self.transform(np.concatenate(gallery))
        owner = np.repeat(np.arange(len(gallery)), [len(v) for v in gallery])
        out = np.zeros((len(queries), len(gallery)), dtype=np.float32)
        for i, v in enumerate(queries):
            q = self.transform(v)
            d2 = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1).min(0)
            np.maximum.at(out[i], owner, np.exp(-0.5 * d2))
        return out
