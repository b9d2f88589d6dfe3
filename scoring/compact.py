"""A calibrated linear model in its serving form: one vectorizer, one matrix product.

`CalibratedClassifierCV` over a `vectorizer + LogisticRegression` pipeline
keeps one pipeline per fold and calls each through scikit-learn's generic
machinery: about 1 ms for a page's candidates, most of it per-call overhead.
The same arithmetic fits in one sparse product: the folds' coefficients are
laid on one shared vocabulary, and each fold's sigmoid calibration
`p = 1 / (1 + exp(a·f + b))` of its decision value `f` is applied and averaged
in numpy. `compact` returns an estimator whose probabilities equal the
original's (to rounding) at a tenth of the cost, or the original when it is
not of that shape (gradient boosting, isotonic calibration).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction import DictVectorizer, FeatureHasher
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline


class CalibratedLinearScorer(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Sigmoid-calibrated linear folds averaged, as `CalibratedClassifierCV` does, in one product.

    `fit` fits `calibrated` (a `CalibratedClassifierCV` over a vectorizer and
    logistic regression pipeline) and keeps only its arithmetic: `vectorizer_`,
    `coef_` (one row per fold), `intercept_`, `a_`, `b_`, `classes_`.
    """

    def __init__(self, calibrated: CalibratedClassifierCV | None = None) -> None:
        self.calibrated = calibrated

    def fit(self, X: Sequence[Mapping[str, float]], y: Sequence[int]) -> CalibratedLinearScorer:
        """Fit the wrapped calibrated pipeline, then keep its serving form."""
        if self.calibrated is None:
            raise ValueError("calibrated: a CalibratedClassifierCV to fit is required")
        return self._take(clone(self.calibrated).fit(X, y))

    @classmethod
    def from_fitted(cls, calibrated: CalibratedClassifierCV) -> CalibratedLinearScorer:
        """The serving form of an already fitted calibrated pipeline."""
        return cls(calibrated=None)._take(calibrated)

    def _take(self, fitted: CalibratedClassifierCV) -> CalibratedLinearScorer:
        folds = fitted.calibrated_classifiers_
        vectorizers = [fold.estimator.steps[0][1] for fold in folds]
        if isinstance(vectorizers[0], DictVectorizer):
            vocabulary = sorted({name for v in vectorizers for name in v.vocabulary_})
            shared = DictVectorizer()
            shared.vocabulary_ = {name: index for index, name in enumerate(vocabulary)}
            shared.feature_names_ = vocabulary
            coef = np.zeros((len(folds), len(vocabulary)))
            for row, (fold, vectorizer) in enumerate(zip(folds, vectorizers, strict=True)):
                weights = fold.estimator.steps[-1][1].coef_[0]
                for name, column in vectorizer.vocabulary_.items():
                    coef[row, shared.vocabulary_[name]] = weights[column]
            self.vectorizer_: DictVectorizer | FeatureHasher = shared
        else:
            # A hasher is stateless: every fold shares its columns already.
            self.vectorizer_ = vectorizers[0]
            coef = np.vstack([fold.estimator.steps[-1][1].coef_[0] for fold in folds])
        self.coef_: NDArray[np.float64] = coef
        self.intercept_ = np.array([f.estimator.steps[-1][1].intercept_[0] for f in folds])
        self.a_ = np.array([float(fold.calibrators[0].a_) for fold in folds])
        self.b_ = np.array([float(fold.calibrators[0].b_) for fold in folds])
        self.classes_ = fitted.classes_
        return self

    def predict_proba(self, X: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        """Both classes' probabilities, averaged over the calibrated folds."""
        decision = self.vectorizer_.transform(X) @ self.coef_.T + self.intercept_
        positive: NDArray[np.float64] = expit(-(self.a_ * decision + self.b_)).mean(axis=1)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Sequence[Mapping[str, float]]) -> NDArray[Any]:
        """The more probable class."""
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)])


def compactable(estimator: Any) -> bool:
    """Whether `estimator` is a fitted sigmoid-calibrated vectorizer + logistic pipeline."""
    if not isinstance(estimator, CalibratedClassifierCV) or estimator.method != "sigmoid":
        return False
    if not hasattr(estimator, "calibrated_classifiers_") or len(estimator.classes_) != 2:
        return False
    return all(
        isinstance(fold.estimator, Pipeline)
        and len(fold.estimator.steps) == 2
        and isinstance(fold.estimator.steps[0][1], (DictVectorizer, FeatureHasher))
        and isinstance(fold.estimator.steps[1][1], LogisticRegression)
        and len(fold.calibrators) == 1
        for fold in estimator.calibrated_classifiers_
    )


def compact(estimator: Any) -> Any:
    """The serving form of `estimator` when it has one, else `estimator` itself."""
    return CalibratedLinearScorer.from_fitted(estimator) if compactable(estimator) else estimator
