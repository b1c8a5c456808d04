"""Jurisdiction: an address or a place named in an appeal resolves to the responsible street."""

from __future__ import annotations

import pytest

from fixtures import DATA_DIR
from router.catalogue import Catalogue, load_catalogue


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(DATA_DIR)


def test_every_gazetteer_place_resolves_to_its_own_street(catalogue: Catalogue) -> None:
    for place in catalogue.places:
        match = catalogue.resolve_place(f"我家住在{place.name}旁边")
        assert match is not None, place.name
        assert match.district_code == place.district_code
        if match.name == place.name:
            assert match.street_code == place.street_code


def test_compound_wins_over_road_street_and_district(catalogue: Catalogue) -> None:
    compound = next(p for p in catalogue.places if p.kind == "compound")
    road = next(
        p
        for p in catalogue.places
        if p.kind == "road" and p.district_code == compound.district_code
    )
    district = catalogue.department(compound.district_code)
    assert district is not None
    match = catalogue.resolve_place(f"{district.name}{road.name}{compound.name}小区3栋")
    assert match is not None
    assert (match.kind, match.name, match.street_code) == (
        "compound",
        compound.name,
        compound.street_code,
    )


def test_street_name_resolves_with_or_without_district_prefix(catalogue: Catalogue) -> None:
    street = catalogue.streets("A3")[0]
    short = street.name.removeprefix("A3区")
    for text in (f"{street.name}某村", f"{short}那边有个问题"):
        match = catalogue.resolve_place(text)
        assert match is not None
        assert (match.kind, match.street_code, match.district_code) == ("street", street.code, "A3")


def test_district_only_resolves_without_street(catalogue: Catalogue) -> None:
    match = catalogue.resolve_place("A9市有个事情想反映一下")
    assert match is not None
    assert (match.kind, match.street_code, match.district_code) == ("district", None, "A9")


def test_explicit_district_beats_a_place_of_another_district(catalogue: Catalogue) -> None:
    place = next(p for p in catalogue.places if p.district_code == "A1" and p.kind == "road")
    match = catalogue.resolve_place(f"A5区{place.name}")
    assert match is not None
    assert match.district_code == "A5"


def test_real_message_text_resolves_to_a_street(catalogue: Catalogue) -> None:
    text = "座落在A市A3区联丰路米兰春天G2栋320，一家名叫一米阳光婚纱艺术摄影的影楼"
    match = catalogue.resolve_place(text)
    assert match is not None
    assert match.district_code == "A3"
    assert match.street_code is not None and match.street_code.startswith("A3-")


@pytest.mark.parametrize("text", ["", "路灯坏了好几天了", "我想咨询一下社保"])
def test_text_without_a_known_place_resolves_to_none(catalogue: Catalogue, text: str) -> None:
    assert catalogue.resolve_place(text) is None
