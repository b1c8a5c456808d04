"""Turning dataset labels into the "/"-joined paths the classifier learns.

With the catalogue, a label may be a category code, a path or prefix, or a unique name; it becomes
the category's `path_text`. Without it (or for a model trained on free labels), labels are used
as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from classifier.errors import DatasetError

__all__ = ["LabelResolver", "ResolvedLabels"]


@dataclass(frozen=True)
class ResolvedLabels:
    paths: list[str]
    kind: str  # "taxonomy" or "free"


class LabelResolver:
    """Resolves labels against a catalogue (`router.catalogue.Catalogue`) when one is given."""

    def __init__(self, catalogue: Any | None) -> None:
        self.catalogue = catalogue
        self._cache: dict[str, Any] = {}

    def category(self, label: str) -> Any | None:
        if self.catalogue is None:
            return None
        if label not in self._cache:
            self._cache[label] = self.catalogue.resolve_label(label)
        return self._cache[label]

    def resolve(self, labels: Sequence[str], *, kind: str | None = None) -> ResolvedLabels:
        """Paths for `labels`. `kind` forces "taxonomy" or "free"; None decides from the data:
        taxonomy when every label is in the catalogue, free when none is, an error otherwise."""
        if kind == "free" or self.catalogue is None:
            return ResolvedLabels([str(label).strip() for label in labels], "free")
        categories = [self.category(str(label)) for label in labels]
        missing = sorted(
            {str(lab) for lab, cat in zip(labels, categories, strict=True) if cat is None}
        )
        if missing and (kind == "taxonomy" or len(missing) < len(set(labels))):
            shown = ", ".join(repr(m) for m in missing[:5])
            raise DatasetError(
                f"{len(missing)} label(s) are not in the category catalogue, e.g. {shown} "
                "(use --free-labels to train on the labels as written)"
            )
        if missing:
            return ResolvedLabels([str(label).strip() for label in labels], "free")
        return ResolvedLabels([c.path_text for c in categories if c is not None], "taxonomy")

    def describe(self, path: str) -> dict[str, str | None]:
        """category_code, category_path and the catalogue's lead department of a predicted path."""
        category = self.category(path)
        if category is None:
            return {"category_code": None, "category_path": None, "lead_department": None}
        catalogue: Any = self.catalogue
        return {
            "category_code": category.code,
            "category_path": category.path_text,
            # the category's lead or its nearest ancestor's: a level-1 prediction (a model
            # trained on level-1 labels) still gets the department its group's lead
            "lead_department": catalogue.responsible_department(category.code),
        }
