"""Routing policy: from a classifier suggestion to a decision that an agent or the system acts on.

The category is the classifier's leaf. The department is decided by, in order:

1. **jurisdiction** — the category is handled locally (`handling_scope == "local"`) and the
   address or the text names a place: the street (or district) responsible for it;
2. **model** — the learned department model, trained on history, disagrees with the catalogue and
   is confident (`department_model_threshold`): history beats the catalogue;
3. **catalogue** — the category's lead department (主办).

`RouteDecision.department_source` says which one decided. Urgent keywords force the urgent
priority and the urgent deadline. The order is dispatched automatically when the category
confidence reaches the threshold of its level-1 group (or the default threshold); otherwise it
waits for an agent's review. A text the classifier's out-of-distribution gate flagged
(`Suggestion.ood`: not Chinese, too short, junk, unknown words) is never dispatched automatically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from classifier import Suggestion
from router.catalogue import Catalogue, Category, PlaceMatch

URGENT_DEADLINE_HOURS = 2


@dataclass(frozen=True, kw_only=True)
class RoutingPolicy:
    auto_dispatch_threshold: float = 0.85
    group_thresholds: Mapping[str, float] = field(default_factory=dict)  # level-1 code -> value
    department_model_threshold: float = 0.9
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
            "alternatives": [
                {
                    "category_code": a.category_code,
                    "category_path": a.category_path,
                    "confidence": round(a.confidence, 4),
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
    if category is not None and category.handling_scope == "local" and place is not None:
        local = place.street_code or place.district_code
        if local and catalogue.department(local) is not None:
            return local, "jurisdiction"
    lead = category.lead_department if category is not None else None
    if suggestion.department is not None:
        code, probability = suggestion.department
        if (
            code != lead
            and probability >= policy.department_model_threshold
            and catalogue.department(code) is not None
        ):
            return code, "model"
    if lead:
        return lead, "catalogue"
    return None, "none"


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
    for label, confidence in suggestion.alternatives:
        alt = catalogue.resolve_label(label)
        if alt is not None:
            alternatives.append(
                Alternative(
                    category_code=alt.code, category_path=alt.path_text, confidence=confidence
                )
            )
    auto = (
        category is not None
        and category.is_leaf
        and department is not None
        and suggestion.confidence >= policy.threshold_for(category)
        and not suggestion.ood
    )
    return RouteDecision(
        category_code=category.code if category else None,
        category_path=category.path_text if category else None,
        confidence=float(suggestion.confidence),
        department_code=department,
        department_source=source,
        assisting_department_codes=category.assisting_departments if category else (),
        district_code=place.district_code if place else None,
        street_code=place.street_code if place else None,
        place=place.name if place else None,
        priority=priority,
        urgent_keywords=urgent,
        deadline_value=deadline_value,
        deadline_unit=deadline_unit,
        auto_dispatch=auto,
        alternatives=tuple(alternatives),
        terms=tuple(suggestion.terms),
        ood=tuple(suggestion.ood),
    )
