import random
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction import DictVectorizer, FeatureHasher
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from scoring.compact import CalibratedLinearScorer, compact, compactable
from scoring.features import candidate_row
from scoring.synthetic import GROUND_TRUTH, make_visitors


def _data(seed: int = 0) -> tuple[list[dict[str, float]], list[int]]:
    rng = random.Random(seed)
    rows, labels = [], []
    for visitor in make_visitors(300, seed=seed):
        variant = rng.choice(list(GROUND_TRUTH[visitor.audience]))
        rows.append(candidate_row(visitor.snapshot, "b", variant, (f"tag-{variant}",)))
        labels.append(int(rng.random() < GROUND_TRUTH[visitor.audience][variant] * 3))
    return rows, labels


def _calibrated(vectorizer: Any, method: str = "sigmoid") -> CalibratedClassifierCV:
    pipeline = Pipeline([("vectorize", vectorizer), ("model", LogisticRegression(max_iter=500))])
    return CalibratedClassifierCV(pipeline, method=method, cv=3)


@pytest.mark.parametrize(
    "vectorizer",
    [DictVectorizer(), FeatureHasher(n_features=2**12, alternate_sign=False)],
    ids=["dict", "hashing"],
)
def test_serving_form_gives_the_same_probabilities(vectorizer: Any) -> None:
    rows, labels = _data()
    fitted = _calibrated(vectorizer).fit(rows, labels)
    served = compact(fitted)
    assert isinstance(served, CalibratedLinearScorer)
    unseen, _ = _data(seed=1)
    unseen.append({"never-seen-feature": 1.0})
    np.testing.assert_allclose(
        served.predict_proba(unseen), fitted.predict_proba(unseen), rtol=0, atol=1e-9
    )
    assert served.predict(unseen).tolist() == fitted.predict(unseen).tolist()


def test_fit_follows_estimator_conventions() -> None:
    rows, labels = _data()
    scorer = CalibratedLinearScorer(_calibrated(DictVectorizer()))
    assert scorer.fit(rows, labels) is scorer
    assert scorer.coef_.shape[0] == 3
    assert scorer.predict_proba(rows[:4]).shape == (4, 2)


def test_other_shapes_are_left_as_they_are() -> None:
    rows, labels = _data()
    isotonic = _calibrated(DictVectorizer(), method="isotonic").fit(rows, labels)
    boosted = CalibratedClassifierCV(
        Pipeline(
            [
                ("vectorize", DictVectorizer(sparse=False)),
                ("model", HistGradientBoostingClassifier(max_iter=5)),
            ]
        ),
        cv=3,
    ).fit(rows, labels)
    unfitted = _calibrated(DictVectorizer())
    for estimator in (isotonic, boosted, unfitted):
        assert not compactable(estimator)
        assert compact(estimator) is estimator
