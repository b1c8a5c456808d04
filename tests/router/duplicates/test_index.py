"""Duplicate detection (并单): constructed near-duplicates and non-duplicates, repeat callers,
and the merge / unmerge record."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from router.duplicates.index import (
    Action,
    AppealRecord,
    CallerRecord,
    CategoryRelation,
    DuplicateConfig,
    DuplicateIndex,
    MergeGroup,
    PlaceRelation,
    absorb,
    cluster_links,
    find_clusters,
    merge,
    unmerge,
)
from router.errors import Conflict, InvalidInput, NotFound

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)

# Unrelated appeals elsewhere in the city, so that document frequencies mean something.
BACKGROUND = [
    ("夜间施工噪音扰民", "工地晚上十一点以后还在施工，噪音很大，影响休息", "020301"),
    ("路灯损坏", "小区旁边的路灯坏了一个多月，晚上出行不安全", "010501"),
    ("停水无通知", "小区突然停水两天，没有任何通知，老人生活困难", "010601"),
    ("占道经营", "路边摊贩占道经营，堵塞交通，行人只能走机动车道", "010701"),
    ("油烟扰民", "楼下餐馆油烟直排，家里窗户都不敢开", "020201"),
    ("违章搭建", "楼顶有人私自搭建房屋，存在安全隐患", "010801"),
    ("公交站台", "公交站台设置在路口，上下车非常危险，建议迁移", "070101"),
    ("物业乱收费", "物业公司擅自提高物业费，也不公示收支", "010901"),
    ("学位问题", "孩子入学没有学位，要求解决适龄儿童就近入学", "030101"),
    ("拖欠工资", "公司拖欠工人工资三个月，多次讨要没有结果", "020901"),
]
SITES = ["万国城", "世纪城", "东方新城", "丽发新城", "保利花园"]


def appeal(
    appeal_id: int,
    text: str,
    *,
    title: str = "",
    hours: float = 0.0,
    site: str | None = "青青家园",
    street: str | None = "A3-01",
    district: str | None = "A3",
    category: str | None = "020101",
    caller: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> AppealRecord:
    names = (site,) if site else ()
    return AppealRecord(
        id=appeal_id,
        received_at=T0 + timedelta(hours=hours),
        text=f"{site or ''}{text}",
        title=title,
        category_code=category,
        site=site,
        street=street,
        district=district,
        latitude=lat,
        longitude=lon,
        caller=caller if caller is not None else f"caller-{appeal_id}",
        place_names=names,
    )


def background() -> list[AppealRecord]:
    records = []
    for i, (title, text, category) in enumerate(BACKGROUND * 3):
        site = SITES[i % len(SITES)]
        records.append(
            appeal(
                1000 + i,
                text,
                title=site + title,
                hours=-48 + i,
                site=site,
                street=f"A{i % 5 + 1}-0{i % 3 + 1}",
                category=category,
            )
        )
    return records


def index_with(*records: AppealRecord, config: DuplicateConfig | None = None) -> DuplicateIndex:
    index = DuplicateIndex(config)
    index.extend(background())
    for record in records:
        index.add(record)
    return index


GARBAGE = appeal(
    1, "小区门口垃圾堆积好几天没人清理，臭气熏天", title="青青家园门口垃圾堆积无人清理"
)


def test_rephrased_report_at_the_same_site_is_suggested_for_merge() -> None:
    index = index_with(GARBAGE)
    again = appeal(
        2, "门口的垃圾堆了一个星期没人清理，太臭了", title="青青家园垃圾无人清理", hours=5
    )

    result = index.check(again)

    assert result.action is Action.SUGGEST
    assert result.master_id == GARBAGE.id
    best = result.candidates[0]
    assert best.place is PlaceRelation.SAME_SITE
    assert best.category is CategoryRelation.SAME
    assert "place: same_site" in best.reasons
    assert best.score >= index.config.suggest_threshold


def test_a_different_problem_at_the_same_site_is_not_suggested() -> None:
    index = index_with(GARBAGE)
    noise = appeal(
        3,
        "晚上十二点还有工地施工，噪音吵得睡不着",
        title="青青家园夜间施工扰民",
        category="020301",
        hours=2,
    )

    result = index.check(noise)

    assert result.action is Action.NONE
    assert all(c.appeal_id != GARBAGE.id or c.score < 0.2 for c in result.candidates)


@pytest.mark.parametrize(
    ("site", "street", "relation"),
    [
        ("万科金域蓝湾", "A3-01", PlaceRelation.DIFFERENT_SITE),  # next compound, same street
        (None, "A4-04", PlaceRelation.DIFFERENT),  # another street
    ],
)
def test_the_same_problem_at_a_different_place_is_not_suggested(
    site: str | None, street: str, relation: PlaceRelation
) -> None:
    index = index_with(GARBAGE)
    elsewhere = replace(
        appeal(4, "小区门口垃圾堆积好几天没人清理，臭气熏天", site=site, street=street, hours=1),
        title=f"{site or ''}门口垃圾堆积无人清理",
    )

    result = index.check(elsewhere)

    assert result.action is Action.NONE
    same_text = [c for c in result.candidates if c.appeal_id == GARBAGE.id]
    assert not same_text or (same_text[0].place is relation and same_text[0].text_similarity > 0.5)


def test_category_relation_orders_scores_same_then_neighbour_then_different() -> None:
    text = "小区门口垃圾堆积好几天没人清理"
    index = index_with(
        appeal(11, text, category="020101"),
        appeal(12, text, category="020102"),
        appeal(13, text, category="030101"),
    )

    found = {c.appeal_id: c for c in index.candidates(appeal(14, text, hours=1), k=10)}

    assert found[11].category is CategoryRelation.SAME
    assert found[12].category is CategoryRelation.NEIGHBOUR
    assert found[13].category is CategoryRelation.DIFFERENT
    assert found[11].score > found[12].score > found[13].score


def test_the_category_neighbourhood_function_can_be_plugged_in() -> None:
    text = "小区门口垃圾堆积好几天没人清理"
    config = DuplicateConfig(category_group=lambda code: code[:2])
    index = index_with(appeal(21, text, category="020901"), config=config)

    best = index.candidates(appeal(22, text, category="020101", hours=1))[0]

    assert best.category is CategoryRelation.NEIGHBOUR


def test_appeals_older_than_the_window_are_not_candidates() -> None:
    config = DuplicateConfig(window=timedelta(days=7))
    index = index_with(GARBAGE, config=config)

    late = replace(GARBAGE, id=5, received_at=GARBAGE.received_at + timedelta(days=8))

    assert index.candidates(late) == []
    assert index.check(replace(late, received_at=GARBAGE.received_at + timedelta(days=6))).master_id


def test_prune_drops_old_appeals_and_keeps_recent_ones_findable() -> None:
    config = DuplicateConfig(window=timedelta(days=1))
    index = DuplicateIndex(config)
    index.extend(
        [
            appeal(31, "小区门口垃圾堆积没人清理", hours=-30),
            appeal(32, "小区门口垃圾堆积没人清理", hours=-2),
        ]
    )

    dropped = index.prune(T0)

    assert dropped == 1
    assert len(index) == 1
    assert [c.appeal_id for c in index.candidates(appeal(33, "小区门口垃圾堆积没人清理"))] == [32]


def test_nearby_coordinates_count_as_the_same_place_without_a_site() -> None:
    index = index_with(
        appeal(41, "路口井盖丢失，很危险", site=None, category="010501", lat=28.2, lon=112.9)
    )
    near = appeal(42, "路口井盖丢失，很危险", site=None, category="010501", lat=28.2005, lon=112.9)
    far = appeal(43, "路口井盖丢失，很危险", site=None, category="010501", lat=28.25, lon=112.9)

    assert index.candidates(near)[0].place is PlaceRelation.NEAR
    assert index.check(near).action is Action.SUGGEST
    assert index.check(far).action is Action.NONE


def test_appeals_without_any_place_are_still_matched_by_their_text() -> None:
    text = "伊景园滨河苑开发商捆绑销售车位，买房必须买车位"
    index = index_with(
        appeal(51, text, site=None, street=None, district=None, category=None, title=text[:12])
    )
    again = appeal(
        52, "投诉伊景园滨河苑捆绑销售车位", site=None, street=None, district=None, category=None
    )

    result = index.check(again)

    assert result.master_id == 51
    assert result.candidates[0].place is PlaceRelation.UNKNOWN


def test_automatic_merge_happens_only_when_configured() -> None:
    dup = replace(GARBAGE, id=6, received_at=GARBAGE.received_at + timedelta(hours=1))

    assert index_with(GARBAGE).check(dup).action is Action.SUGGEST
    config = DuplicateConfig(auto_merge_threshold=0.8)
    assert index_with(GARBAGE, config=config).check(dup).action is Action.AUTO_MERGE


def test_a_caller_calling_again_about_the_same_problem_is_flagged() -> None:
    index = index_with(replace(GARBAGE, caller="phone-hash-1"))
    again = appeal(7, "还是门口垃圾的事，还没人来清理", caller="phone-hash-1", hours=30)
    other = appeal(
        8, "楼上漏水到我家，物业不管", caller="phone-hash-1", category="010901", hours=30
    )

    assert index.check(again).repeat_of == (GARBAGE.id,)
    assert index.check(other).repeat_of == ()
    assert index.check(replace(again, caller="someone-else")).repeat_of == ()


def test_invalid_configuration_and_naive_times_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        DuplicateConfig(suggest_threshold=0.5, auto_merge_threshold=0.4)
    with pytest.raises(InvalidInput):
        DuplicateIndex().add(replace(GARBAGE, received_at=datetime(2026, 5, 4, 9, 0)))


def test_clusters_group_constructed_duplicates_and_leave_others_alone() -> None:
    records = [
        *background(),
        GARBAGE,
        appeal(61, "门口垃圾堆了很多天，没人清理", title="青青家园垃圾没人清理", hours=3),
        appeal(62, "门口垃圾一直没人清理，臭得很", title="青青家园门口垃圾没人管", hours=9),
        appeal(63, "晚上施工噪音太大", title="青青家园夜间施工扰民", category="020301", hours=4),
    ]

    clusters, links = find_clusters(records)

    assert [1, 61, 62] in clusters
    assert not any(63 in cluster for cluster in clusters)
    assert all(candidate.score >= 0.35 for _, _, candidate in links)


def test_cluster_links_are_connected_components_largest_first() -> None:
    assert cluster_links([(5, 4), (4, 3), (9, 8)]) == [[3, 4, 5], [8, 9]]


# ----------------------------------------------------------------------------- merge records


def caller(appeal_id: int, phone: str) -> CallerRecord:
    return CallerRecord(appeal_id, phone, T0 + timedelta(minutes=appeal_id))


def test_merge_then_unmerge_keeps_every_callers_record() -> None:
    master, second, third = caller(1, "138-a"), caller(2, "139-b"), caller(3, "137-c")
    group = MergeGroup(master)

    group, _ = merge(group, second, at=T0, actor="agent-7", score=0.62)
    group, _ = merge(group, third, at=T0, actor="system", score=0.91, automatic=True)
    assert group.callback_recipients() == (master, second, third)

    group, restored, event = unmerge(group, 2, at=T0 + timedelta(hours=1), actor="agent-7")

    assert restored == second
    assert group.callback_recipients() == (master, third)
    assert [(e.kind, e.appeal_id) for e in group.history] == [
        ("merge", 2),
        ("merge", 3),
        ("unmerge", 2),
    ]
    assert event.master_id == 1
    assert group.history[1].automatic and group.history[1].score == 0.91


def test_merging_twice_or_unmerging_the_master_or_a_stranger_fails() -> None:
    group, _ = merge(MergeGroup(caller(1, "a")), caller(2, "b"), at=T0, actor="agent")

    with pytest.raises(Conflict):
        merge(group, caller(2, "b"), at=T0, actor="agent")
    with pytest.raises(Conflict):
        merge(group, caller(1, "a"), at=T0, actor="agent")
    with pytest.raises(Conflict):
        unmerge(group, 1, at=T0, actor="agent")
    with pytest.raises(NotFound):
        unmerge(group, 99, at=T0, actor="agent")


def test_absorbing_a_group_brings_its_master_and_members_along() -> None:
    group, _ = merge(MergeGroup(caller(1, "a")), caller(2, "b"), at=T0, actor="agent")
    other, _ = merge(MergeGroup(caller(5, "e")), caller(6, "f"), at=T0, actor="agent")

    group, events = absorb(group, other, at=T0, actor="supervisor")

    assert group.appeal_ids == (1, 2, 5, 6)
    assert [e.appeal_id for e in events] == [5, 6]
    assert {r.caller for r in group.callback_recipients()} == {"a", "b", "e", "f"}


def test_a_crowded_site_still_finds_the_duplicate_when_rows_are_prefiltered() -> None:
    config = DuplicateConfig(max_scored_rows=5)
    crowd = [
        appeal(200 + i, text, title=f"青青家园{title}", category=category, hours=-40 + i)
        for i, (title, text, category) in enumerate(BACKGROUND * 2)
    ]
    mine = replace(GARBAGE, caller="phone-hash-9")
    index = index_with(*crowd, mine, config=config)
    again = appeal(9, "门口垃圾还是没人清理", caller="phone-hash-9", hours=2)

    result = index.check(again)

    assert result.master_id == GARBAGE.id
    assert result.repeat_of == (GARBAGE.id,)


def test_the_hashed_query_lookup_matches_a_plain_search_even_with_collisions() -> None:
    import numpy as np

    from router.duplicates.index import _Query

    rng = np.random.default_rng(8)
    ids = np.unique(rng.integers(1, 2**32, 3000, dtype=np.uint64).astype(np.uint32))
    weights = rng.random(len(ids)).astype(np.float32)
    stored = rng.choice(ids, size=(50, 16))
    stored[:, ::2] = rng.integers(1, 2**32, (50, 8), dtype=np.uint64).astype(np.uint32)
    stored_w = rng.random((50, 16)).astype(np.float32)
    lookup = dict(zip(ids.tolist(), weights.tolist(), strict=True))
    expected = [
        sum(lookup.get(i, 0.0) * w for i, w in zip(row, row_w, strict=True))
        for row, row_w in zip(stored.tolist(), stored_w.tolist(), strict=True)
    ]

    query = _Query(ids, weights)

    assert query.second is not None  # 3,000 ids in 2**17 slots always collide somewhere
    assert np.allclose(query.dot(stored, stored_w), expected, rtol=1e-5)
