"""The in-memory reference catalogue: taxonomy, departments and jurisdiction, read-only."""

from __future__ import annotations

import re
from collections.abc import Iterable

from router.catalogue.entries import Category, Department, Place, PlaceMatch
from router.catalogue.jurisdiction import Gazetteer
from router.errors import NotFound

_SEPARATORS = re.compile(r"\s*[/／>＞]\s*")


class Catalogue:
    """Categories (every level), departments and gazetteer places, with lookups for the router."""

    def __init__(
        self,
        categories: Iterable[Category],
        departments: Iterable[Department],
        places: Iterable[Place] = (),
        global_urgent_keywords: Iterable[str] = (),
    ) -> None:
        self.categories: dict[str, Category] = {c.code: c for c in categories}
        self.departments: dict[str, Department] = {d.code: d for d in departments}
        self.places: tuple[Place, ...] = tuple(places)
        self.global_urgent_keywords: tuple[str, ...] = tuple(global_urgent_keywords)
        self._leaves = [c for c in self.categories.values() if c.is_leaf]
        self._by_path = {c.path_text: c for c in self.categories.values()}
        by_name: dict[str, list[Category]] = {}
        for c in self.categories.values():
            by_name.setdefault(c.name, []).append(c)
        self._by_unique_name = {n: cs[0] for n, cs in by_name.items() if len(cs) == 1}
        self._children: dict[str | None, list[Category]] = {}
        for c in self.categories.values():
            self._children.setdefault(c.parent_code, []).append(c)
        self._gazetteer = Gazetteer(self.places, self.departments.values())
        keywords: dict[str, list[str]] = {k: [] for k in self.global_urgent_keywords}
        for leaf in self._leaves:
            for k in leaf.urgent_keywords:
                keywords.setdefault(k, []).append(leaf.code)
        self._urgent = {k: tuple(v) for k, v in keywords.items()}
        self._urgent_by_length = sorted(self._urgent, key=len, reverse=True)

    # --- taxonomy -------------------------------------------------------------------------
    def leaves(self) -> list[Category]:
        """Every level-3 category, in code order."""
        return list(self._leaves)

    def children(self, code: str | None) -> list[Category]:
        """Direct children of `code` (None: the level-1 categories)."""
        return list(self._children.get(code, ()))

    def category(self, code: str) -> Category | None:
        return self.categories.get(code)

    def category_or_raise(self, code: str) -> Category:
        found = self.categories.get(code)
        if found is None:
            raise NotFound(f"未知的事项分类编码: {code!r}", code=code)
        return found

    def responsible_department(self, code: str) -> str | None:
        """The lead department of category `code`, or of its nearest ancestor that has one.

        Leaves always have a lead; inner nodes of the shipped catalogue have one too, so a
        prediction that stops at level 1 or 2 still reaches a department. None for an unknown
        code or a catalogue whose path up has no lead at all.
        """
        node = self.categories.get(code)
        while node is not None:
            if node.lead_department:
                return node.lead_department
            node = self.categories.get(node.parent_code) if node.parent_code else None
        return None

    def resolve_label(self, label: str) -> Category | None:
        """A category from a code, a path "a/b/c" (or a prefix "a", "a/b") or a unique name."""
        label = (label or "").strip()
        if not label:
            return None
        if label in self.categories:
            return self.categories[label]
        path = "/".join(part for part in _SEPARATORS.split(label) if part)
        if path in self._by_path:
            return self._by_path[path]
        return self._by_unique_name.get(label)

    # --- departments ----------------------------------------------------------------------
    def department(self, code: str) -> Department | None:
        return self.departments.get(code)

    def districts(self) -> list[Department]:
        return [d for d in self.departments.values() if d.kind == "district"]

    def streets(self, district_code: str | None = None) -> list[Department]:
        """Streets and towns, optionally of one district."""
        return [
            d
            for d in self.departments.values()
            if d.kind == "street" and (district_code is None or d.parent_code == district_code)
        ]

    # --- jurisdiction ---------------------------------------------------------------------
    def resolve_place(self, text: str) -> PlaceMatch | None:
        """The most specific place named in an address or appeal text (see `jurisdiction`)."""
        return self._gazetteer.resolve(text)

    # --- urgency --------------------------------------------------------------------------
    def urgent_keywords(self) -> dict[str, tuple[str, ...]]:
        """Keyword -> codes of the leaves that declare it (empty tuple: urgent for any leaf)."""
        return dict(self._urgent)

    def find_urgent_keywords(self, text: str, category_code: str | None = None) -> list[str]:
        """Urgent keywords present in `text` that apply globally or to `category_code`."""
        hits = []
        for keyword in self._urgent_by_length:
            if keyword in text:
                leaves = self._urgent[keyword]
                if (
                    keyword in self.global_urgent_keywords
                    or category_code is None
                    or (category_code in leaves)
                ):
                    hits.append(keyword)
        return hits
