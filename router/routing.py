"""Routing policy: from a classifier suggestion to a decision that an agent or the system acts on.

The category is the classifier's deepest prediction (a leaf, or a level-1/level-2 node when the
model stops there: a model trained on level-1 labels, or a shallow history). The department is
chosen among up to three candidates by how often each source was right on real appeals
(`SourcePrecision`, measured by `python -m benchmarks.department_sources`):

- **catalogue**: the lead department (主办) of the category, or of its nearest ancestor that has
  one (`Catalogue.responsible_department`), so a level-1 prediction still reaches a department;
- **jurisdiction**: the category is handled locally (`handling_scope == "local"`) and the
  address or the text names a place of a known street: that street;
- **model**: the learned department model, at the measured precision of its probability band,
  and never below `department_model_threshold`.

The candidate with the highest measured precision wins; on a tie the catalogue, then
jurisdiction. `RouteDecision.department_source` says which one decided (a model that agrees
with the catalogue counts as the catalogue). Urgent keywords force the urgent priority and the
urgent deadline. The order is dispatched automatically only for a leaf with a department whose
`department_confidence` reaches the threshold of its level-1 group (or the default threshold);
a level-1 or level-2 prediction always waits for an agent's review, with the department already
proposed.

`department_confidence` is the probability that the chosen department is right, not that the
leaf is: the mass of the classifier's top 5 paths whose responsible department is the chosen one
(never below the leaf's own probability; the leaf's probability alone when jurisdiction or the
learned model chose a department no path leads to). Sibling leaves often share their lead, and
an order goes to a department, not to a leaf: on real held-out messages this confidence reaches
0.85 on about 15 % of them, the leaf probability on under 2 % (`python -m benchmarks.real_routing`).
A text the classifier's out-of-distribution gate flagged (`Suggestion.ood`: not Chinese, too
short, junk, unknown words) is never dispatched automatically either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from classifier import Suggestion
from router.catalogue import Catalogue, Category, PlaceMatch

URGENT_DEADLINE_HOURS = 2
DEPARTMENT_BEAM = 5
"""How many of the classifier's top paths `RouteDecision.department_confidence` sums over; a
caller that shows fewer alternatives still asks the model for this many."""


@dataclass(frozen=True, kw_only=True)
class SourcePrecision:
    """Share of right departments per source on real appeals whose reply names the body.

    `model` holds (lowest probability, precision) bands in ascending order; a probability below
    the first band has precision 0 (the model is not trusted there).
    """

    catalogue: float
    jurisdiction: float
    model: tuple[tuple[float, float], ...] = ()

    def model_at(self, probability: float) -> float:
        precision = 0.0
        for low, value in self.model:
            if probability >= low:
                precision = value
        return precision


MEASURED_PRECISION = SourcePrecision(
    catalogue=0.146, jurisdiction=0.208, model=((0.0, 0.208), (0.5, 0.333), (0.7, 0.567))
)
"""Measured by `python -m benchmarks.department_sources` on the 373 real messages whose reply names
a catalogue body, on the rows where a source contradicts the catalogue lead of the prediction
(only those rows decide anything): the lead was right on 14.6 % of them, jurisdiction on 20.8 %
(local categories with a street named, 24 rows), the model on 20.8 % below probability 0.5
(130 rows), 33.3 % in [0.5, 0.7) (24) and 56.7 % from 0.7 (30). Self-trained stand-in model:
20,000 synthetic appeals of seed 12345 and the real level-1 messages and titles, none of the
evaluated texts. Re-measure when the default model changes.
"""


@dataclass(frozen=True, kw_only=True)
class RoutingPolicy:
    auto_dispatch_threshold: float = 0.85
    group_thresholds: Mapping[str, float] = field(default_factory=dict)  # level-1 code -> value
    department_model_threshold: float = 0.0  # the measured bands decide; a floor if wanted
    department_precision: SourcePrecision = MEASURED_PRECISION
    urgent_deadline_hours: int = URGENT_DEADLINE_HOURS

    def threshold_for(self, category: Category | None) -> float:
        if category is None:
            return 1.01  # nothing to dispatch to: always review
        group = category.code[:2]
        return self.group_thresholds.get(group, self.auto_dispatch_threshold)


@dataclass(frozen=True, kw_only=True)
class Alternative:
    category_code: str
    category_path: str
    confidence: float
    department_code: str | None = None  # the category's responsible department


@dataclass(frozen=True, kw_only=True)
class RouteDecision:
    category_code: str | None
    category_path: str | None
    confidence: float
    department_code: str | None
    department_source: str  # "jurisdiction" | "model" | "catalogue" | "none"
    assisting_department_codes: tuple[str, ...]
    district_code: str | None
    street_code: str | None
    place: str | None
    priority: str
    urgent_keywords: tuple[str, ...]
    deadline_value: int
    deadline_unit: str
    auto_dispatch: bool
    department_confidence: float
    alternatives: tuple[Alternative, ...]
    terms: tuple[tuple[str, float], ...]
    ood: tuple[str, ...] = ()  # the out-of-distribution flags, shown to the reviewing agent

    def to_dict(self) -> dict[str, Any]:
        return {
            "category_code": self.category_code,
            "category_path": self.category_path,
            "confidence": round(self.confidence, 4),
            "department_code": self.department_code,
            "department_source": self.department_source,
            "assisting_department_codes": list(self.assisting_department_codes),
            "district_code": self.district_code,
            "street_code": self.street_code,
            "place": self.place,
            "priority": self.priority,
            "urgent_keywords": list(self.urgent_keywords),
            "deadline_value": self.deadline_value,
            "deadline_unit": self.deadline_unit,
            "auto_dispatch": self.auto_dispatch,
            "department_confidence": round(self.department_confidence, 4),
            "alternatives": [
                {
                    "category_code": a.category_code,
                    "category_path": a.category_path,
                    "confidence": round(a.confidence, 4),
                    "department_code": a.department_code,
                }
                for a in self.alternatives
            ],
            "terms": [[term, round(weight, 4)] for term, weight in self.terms],
            "ood": list(self.ood),
        }


def _place(catalogue: Catalogue, address: str | None, text: str) -> PlaceMatch | None:
    if address:
        found = catalogue.resolve_place(address)
        if found is not None:
            return found
    return catalogue.resolve_place(text)


def decide_department(
    *,
    catalogue: Catalogue,
    category: Category | None,
    place: PlaceMatch | None,
    suggestion: Suggestion,
    policy: RoutingPolicy,
) -> tuple[str | None, str]:
    """The responsible department and which source decided it (see the module docstring)."""
    measured = policy.department_precision
    lead = catalogue.responsible_department(category.code) if category is not None else None
    # (measured precision, preference on a tie, department, source)
    candidates: list[tuple[float, int, str, str]] = []
    if lead:
        candidates.append((measured.catalogue, 2, lead, "catalogue"))
    if category is not None and category.handling_scope == "local" and place is not None:
        # Only a named street: no reply in the measurement came from a district as a whole, so
        # a district-only place has no measured precision to stand on.
        local = place.street_code
        if local and catalogue.department(local) is not None:
            candidates.append((measured.jurisdiction, 1, local, "jurisdiction"))
    if suggestion.department is not None:
        code, probability = suggestion.department
        if (
            code != lead
            and probability >= policy.department_model_threshold
            and catalogue.department(code) is not None
        ):
            candidates.append((measured.model_at(probability), 0, code, "model"))
    if not candidates:
        return None, "none"
    _precision, _preference, department, source = max(candidates)
    return department, source


def route(
    *,
    catalogue: Catalogue,
    suggestion: Suggestion,
    text: str,
    address: str | None = None,
    policy: RoutingPolicy | None = None,
) -> RouteDecision:
    policy = policy or RoutingPolicy()
    category = catalogue.resolve_label(suggestion.label)
    place = _place(catalogue, address, text)
    department, source = decide_department(
        catalogue=catalogue, category=category, place=place, suggestion=suggestion, policy=policy
    )
    urgent = tuple(catalogue.find_urgent_keywords(text, category.code if category else None))
    priority = "urgent" if urgent else (category.priority if category else "normal")
    if urgent:
        deadline_value, deadline_unit = policy.urgent_deadline_hours, "hours"
    elif category is not None:
        deadline_value, deadline_unit = category.deadline_value, category.deadline_unit
    else:
        deadline_value, deadline_unit = 0, "working_days"
    alternatives = []
    department_mass = 0.0  # of the top DEPARTMENT_BEAM paths whose department is the chosen one
    for rank, (label, confidence) in enumerate(suggestion.alternatives):
        alt = catalogue.resolve_label(label)
        if alt is None:
            continue
        responsible = catalogue.responsible_department(alt.code)
        alternatives.append(
            Alternative(
                category_code=alt.code,
                category_path=alt.path_text,
                confidence=confidence,
                department_code=responsible,
            )
        )
        if rank < DEPARTMENT_BEAM and responsible == department:
            department_mass += confidence
    if department is None or source == "jurisdiction":
        confidence = float(suggestion.confidence)
    else:
        confidence = float(max(department_mass, suggestion.confidence))
    auto = (
        category is not None
        and category.is_leaf
        and department is not None
        and confidence >= policy.threshold_for(category)
        and not suggestion.ood
    )
    return RouteDecision(
        category_code=category.code if category else None,
        category_path=category.path_text if category else None,
        confidence=float(suggestion.confidence),
        department_code=department,
        department_source=source,
        # The lead is never also an assisting department (a category may list it among both).
        assisting_department_codes=tuple(
            code
            for code in (category.assisting_departments if category else ())
            if code != department
        ),
        district_code=place.district_code if place else None,
        street_code=place.street_code if place else None,
        place=place.name if place else None,
        priority=priority,
        urgent_keywords=urgent,
        deadline_value=deadline_value,
        deadline_unit=deadline_unit,
        auto_dispatch=auto,
        department_confidence=confidence,
        alternatives=tuple(alternatives),
        terms=tuple(suggestion.terms),
        ood=tuple(suggestion.ood),
    )
