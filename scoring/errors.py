"""Tessera's scoring exceptions.

ScoringError
├── ModelNotFound          no such version, or no model of that kind is active
├── ModelRejected          an artifact that must not be loaded
│   └── SignatureMismatch  its HMAC does not verify: the bytes are never unpickled
└── NotEnoughData          too few exposures or outcomes to train on
"""

from __future__ import annotations


class ScoringError(Exception):
    """Base class of every scoring error."""


class ModelNotFound(ScoringError):
    """No model with that version, or none active."""


class ModelRejected(ScoringError):
    """An artifact that must not be loaded."""


class SignatureMismatch(ModelRejected):
    """The artifact's HMAC signature does not verify with the configured key."""


class NotEnoughData(ScoringError):
    """Too little logged data to train or evaluate a model."""
