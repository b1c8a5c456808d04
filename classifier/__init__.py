"""Pure ML layer: appeal text in, scored category paths (and department codes) out.

Imports nothing else of this project. Errors: see `classifier.errors`.
"""

from classifier.artifact import load_metadata, load_model, save_model
from classifier.calibration import expected_calibration_error
from classifier.errors import ArtifactError, ClassifierError, DatasetError
from classifier.model import HotlineClassifier, Suggestion, split_label
from classifier.text import TextPipeline, mask_personal_data, normalize

__all__ = [
    "ArtifactError",
    "ClassifierError",
    "DatasetError",
    "HotlineClassifier",
    "Suggestion",
    "TextPipeline",
    "expected_calibration_error",
    "load_metadata",
    "load_model",
    "mask_personal_data",
    "normalize",
    "save_model",
    "split_label",
]
