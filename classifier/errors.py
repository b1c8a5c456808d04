"""Errors of the pure ML layer.

ClassifierError
├── NotFittedError-like misuse is scikit-learn's own `NotFittedError`
├── ArtifactError        a model directory that is missing, corrupt or mismatched
└── DatasetError         training data that cannot be used (empty, single class, bad column)
"""

from __future__ import annotations


class ClassifierError(Exception):
    """Base class for expected failures of the classifier layer."""


class ArtifactError(ClassifierError):
    """A model artifact is missing, corrupt, or was written by incompatible library versions."""


class DatasetError(ClassifierError):
    """A dataset cannot be used for training or evaluation."""
