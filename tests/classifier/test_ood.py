"""The out-of-distribution gate and the intake rule (`classifier.ood`)."""

from __future__ import annotations

import pytest

from classifier.ood import (
    MIN_CJK_CHARS,
    OutOfDistribution,
    assess,
    intake_refusal,
    known_share,
    measure,
)

STREET_LIGHT = (
    "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
)
MIXED = "小区的WiFi信号太差，联通宽带经常断网，打客服10010也没人处理，希望尽快解决。"


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("The streetlight outside my building has been broken for two weeks.", {"no_chinese"}),
        ("hello", {"no_chinese"}),
        ("Hello!", {"no_chinese"}),
        ("😀😡👍🏻🙏", {"empty", "no_chinese"}),
        ("   \n\t\u3000", {"empty", "no_chinese"}),
        ("。。。？？？", {"empty", "no_chinese"}),
        ("13800138000", {"no_chinese", "digits_only"}),
        ("https://mp.weixin.qq.com/s/XyZ?from=timeline", {"no_chinese", "url_only"}),
        ("www.baidu.com", {"no_chinese", "url_only"}),
        ("asdfghjkl", {"no_chinese", "keyboard_mashing"}),
        ("啊啊啊啊啊啊啊啊啊啊啊啊", {"repeated"}),
        ("测试测试测试测试测试", {"repeated"}),
        ("路灯坏了", {"too_short"}),
        ("The 路灯 is broken", {"little_chinese", "too_short"}),
        ("駅前の街灯が二週間も壊れたままです。早く修理してください。", {"little_chinese"}),
    ],
)
def test_out_of_distribution_texts_are_flagged(text: str, flags: set[str]) -> None:
    verdict = assess(text)
    assert set(verdict.flags) == flags
    assert verdict  # truthy when flagged


@pytest.mark.parametrize(
    "text",
    [
        STREET_LIGHT,
        MIXED,
        "A3区万达广场的KTV每天晚上12点以后还很吵，严重影响休息。",
        "关于A7县康桥长郡房屋存在质量问题的报告",  # a real title: short but an appeal
        "G市医保何时可以设置报销门诊上限？",
        # amounts and masked numbers repeat digits; that is not junk
        "本人于2019年10月10日缴纳了100000元押金，电话0000-00000000，至今未退还。",
    ],
)
def test_appeals_pass_the_gate(text: str) -> None:
    verdict = assess(text)
    assert verdict.flags == ()
    assert not verdict


def test_shares_are_reported() -> None:
    verdict = assess(MIXED)
    assert 0.6 < verdict.cjk_share < 0.9  # WiFi and 10010 are letters and digits too
    assert assess("hello").cjk_share == 0.0
    assert measure("路灯坏了").cjk == 4 < MIN_CJK_CHARS


def test_known_share_counts_words_in_the_vocabulary_and_ignores_numbers() -> None:
    assert known_share(["路灯", "坏", "2019", "维修"], {"路灯", "维修"}) == (2 / 3, 3)
    assert known_share(["123"], {"路灯"}) == (0.0, 0)
    words = ["阿斯", "顿发", "的说", "法是"]
    verdict = assess("阿斯顿发的说法是", words, {"路灯", "维修"})
    assert "unknown_words" in verdict.flags
    assert verdict.known_share == 0.0
    known = assess("路灯坏了很久没人维修", ["路灯", "坏", "没人", "维修"], {"路灯", "维修", "没人"})
    assert "unknown_words" not in known.flags


def test_without_a_vocabulary_known_words_are_not_judged() -> None:
    assert "unknown_words" not in assess("阿斯顿发的说法是水电费").flags


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "blank"),
        (None, "blank"),
        ("   \n\t\u3000", "blank"),
        ("hello", "no_chinese"),
        ("The streetlight is broken", "no_chinese"),
        ("😀😀😀", "no_chinese"),
        ("13800138000", "no_chinese"),
        ("https://example.com", "no_chinese"),
        ("。。。", "no_chinese"),
    ],
)
def test_intake_refuses_blank_and_non_chinese_text(text: str | None, code: str) -> None:
    assert intake_refusal(text) == code


@pytest.mark.parametrize("text", ["路灯坏了", "停水", "hello 你好", MIXED, STREET_LIGHT, "嗯"])
def test_intake_keeps_any_text_with_chinese_even_short(text: str) -> None:
    assert intake_refusal(text) is None


# --- in the model --------------------------------------------------------------------------


def test_suggestions_carry_the_gate_flags(fitted) -> None:
    appeal, english, short = fitted.suggest_batch(
        [
            "您好，我想反映一下，工地事故严重，塔吊问题一直没人管，坍塌希望解决。",
            "The tower crane at the construction site collapsed.",
            "路灯坏了",
        ]
    )
    assert appeal.ood == ()
    assert "no_chinese" in english.ood and "unknown_words" in english.ood
    assert short.ood == ("too_short",)
    assert english.to_dict()["ood"] == list(english.ood)
    assert fitted.suggest(appeal_text := "您好，我想反映一下，物业小区电梯保安问题严重。").ood == ()
    assert fitted.suggest(appeal_text, explain=False).ood == ()


def test_unknown_chinese_words_are_flagged_by_the_model_vocabulary(fitted) -> None:
    # every word known to the tiny test corpus vs. none of them
    assert "unknown_words" not in fitted.suggest("您好，物业小区电梯问题严重，保安不管").ood
    assert "unknown_words" in fitted.suggest("秋风萧瑟天气凉草木摇落露为霜群燕辞归雁南翔").ood


def test_the_gate_result_type_is_small_and_comparable() -> None:
    assert OutOfDistribution((), 1.0, 1.0) == OutOfDistribution((), 1.0, 1.0)
