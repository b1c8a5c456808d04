"""Value objects of the reference catalogue: categories, departments and gazetteer places."""

from __future__ import annotations

from dataclasses import dataclass

APPEAL_TYPES: tuple[str, ...] = ("consultation", "help", "complaint", "report", "suggestion")
"""咨询 / 求助 / 投诉 / 举报 / 建议, in that order."""

APPEAL_TYPE_NAMES: dict[str, str] = {
    "consultation": "咨询",
    "help": "求助",
    "complaint": "投诉",
    "report": "举报",
    "suggestion": "建议",
}
HANDLING_SCOPES: tuple[str, ...] = ("city", "local")
DEADLINE_UNITS: tuple[str, ...] = ("working_days", "hours")
PRIORITIES: tuple[str, ...] = ("normal", "high", "urgent")
DEPARTMENT_KINDS: tuple[str, ...] = (
    "government",  # the city government itself (root of the tree)
    "hotline",  # the 12345 call centre
    "city",  # a city-level government department
    "party",  # party organs, people's congress, CPPCC
    "mass_org",  # trade union, youth league, women's federation, disabled persons' federation
    "utility",  # power, water, gas, heating, public transport companies
    "district",  # district, county or county-level city (A1区 ... A7县 ... A9市)
    "street",  # street office (街道), town (镇) or township (乡)
)
DELIVERY_MODES: tuple[str, ...] = ("queue", "webhook")
LEAD_RULES: tuple[str, ...] = (
    "branch",  # the default of the leaf's level-2 branch of the contest taxonomy
    "gbt_matter",  # the default of the leaf's GB/T 47678.5 matter category
    "keyword",  # a keyword rule on the leaf name, written `keyword:<rule name>`
    "override",  # chosen by hand (fixtures/build_catalogue.py says why)
    "children",  # an inner node: the most common lead of its leaves
)
"""How a category's lead department was chosen (the `lead_rule` column, kind before any `:`)."""
PLACE_KINDS: tuple[str, ...] = ("road", "compound", "landmark")


@dataclass(frozen=True)
class Category:
    """One node of the three-level event taxonomy; leaves (level 3) carry the routing attributes.

    Inner nodes (levels 1 and 2) may carry a lead department too, so that a prediction that stops
    above the leaves still reaches a department; `lead_rule` says how the lead was chosen.
    """

    code: str
    name: str
    level: int
    parent_code: str | None
    path: tuple[str, ...]
    lead_department: str | None
    assisting_departments: tuple[str, ...] = ()
    handling_scope: str = "city"
    appeal_types: tuple[str, ...] = ()
    deadline_value: int = 0
    deadline_unit: str = "working_days"
    priority: str = "normal"
    urgent_keywords: tuple[str, ...] = ()
    lead_rule: str = ""

    @property
    def path_text(self) -> str:
        return "/".join(self.path)

    @property
    def is_leaf(self) -> bool:
        return self.level == 3


@dataclass(frozen=True)
class Department:
    """A body that receives work orders: city department, utility, district or street."""

    code: str
    name: str
    kind: str
    parent_code: str | None
    phone: str = ""
    webhook_url: str = ""
    delivery: str = "queue"


@dataclass(frozen=True)
class Place:
    """A gazetteer entry: a road, residential compound or landmark and the street it belongs to."""

    name: str
    kind: str
    street_code: str
    district_code: str


@dataclass(frozen=True)
class PlaceMatch:
    """The most specific place named in a text and where it belongs."""

    name: str
    kind: str  # "road" | "compound" | "landmark" | "street" | "district"
    street_code: str | None
    district_code: str
