"""Reference catalogue: event taxonomy, department catalogue and jurisdiction gazetteer.

`load_catalogue(directory)` reads and validates `categories.csv`, `departments.csv`,
`gazetteer.csv` (and the optional `urgent_keywords.txt`) from the folder it is given.
`default_catalogue()` is the process's catalogue: the folder named by the `HOTLINE_CATALOGUE_DIR`
environment variable, else the one the application named with `set_default_directory()` (the
service's setting; importing `fixtures` names the shipped `fixtures/data` unless one was named).
The domain never reaches into `fixtures/` itself.
Invalid data raises `router.errors.CatalogueError` naming the file, line and field.
"""

from __future__ import annotations

from router.catalogue.catalogue import Catalogue
from router.catalogue.entries import (
    APPEAL_TYPE_NAMES,
    APPEAL_TYPES,
    DEPARTMENT_KINDS,
    LEAD_RULES,
    Category,
    Department,
    Place,
    PlaceMatch,
)
from router.catalogue.loader import default_catalogue, load_catalogue, set_default_directory

__all__ = [
    "APPEAL_TYPES",
    "APPEAL_TYPE_NAMES",
    "DEPARTMENT_KINDS",
    "LEAD_RULES",
    "Catalogue",
    "Category",
    "Department",
    "Place",
    "PlaceMatch",
    "default_catalogue",
    "load_catalogue",
    "set_default_directory",
]
