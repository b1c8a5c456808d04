"""Reference catalogue: event taxonomy, department catalogue and jurisdiction gazetteer.

`load_catalogue(directory)` reads and validates `categories.csv`, `departments.csv`,
`gazetteer.csv` (and the optional `urgent_keywords.txt`) from `fixtures/data` by default, or from
the directory named by the `HOTLINE_CATALOGUE_DIR` environment variable for `default_catalogue()`.
Invalid data raises `router.errors.CatalogueError` naming the file, line and field.
"""

from __future__ import annotations

from router.catalogue.catalogue import Catalogue
from router.catalogue.loader import DEFAULT_DATA_DIR, default_catalogue, load_catalogue
from router.catalogue.models import (
    APPEAL_TYPE_NAMES,
    APPEAL_TYPES,
    DEPARTMENT_KINDS,
    LEAD_RULES,
    Category,
    Department,
    Place,
    PlaceMatch,
)

__all__ = [
    "APPEAL_TYPES",
    "APPEAL_TYPE_NAMES",
    "DEFAULT_DATA_DIR",
    "DEPARTMENT_KINDS",
    "LEAD_RULES",
    "Catalogue",
    "Category",
    "Department",
    "Place",
    "PlaceMatch",
    "default_catalogue",
    "load_catalogue",
]
