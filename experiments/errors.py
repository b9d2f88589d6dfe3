"""Experiment analysis errors.

ExperimentError
└── ExperimentNotFound: no definition in the content and no exposure in the log
"""

from __future__ import annotations


class ExperimentError(Exception):
    """An experiment report that cannot be made."""


class ExperimentNotFound(ExperimentError):
    """Neither the content nor the exposure log knows the experiment."""
