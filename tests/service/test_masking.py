from __future__ import annotations

import pytest

from service.auth.masking import (
    Purpose,
    can_see_personal_data,
    mask_email,
    mask_id_card,
    mask_name,
    mask_phone,
    mask_record,
    mask_text,
)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13812345678", "138****5678"),
        ("138-1234-5678", "138-****-5678"),
        ("+86 13812345678", "+86 138****5678"),
        ("0731-84567890", "0731-****7890"),
        ("(010)12345678", "(010)****5678"),
        ("84567890", "****7890"),
        ("１３８１２３４５６７８", "１３８****５６７８"),
        ("12345", "****5"),
    ],
)
def test_phone_numbers_keep_only_their_ends(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("430102199001011234", "4301**********1234"),
        ("43010219900101123X", "4301**********123X"),
        ("430102900101123", "4301*******1123"),
        ("1234", "****"),
    ],
)
def test_id_card_numbers_keep_the_first_and_last_four(raw: str, masked: str) -> None:
    assert mask_id_card(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("zhangsan@example.com", "z***@example.com"),
        ("a@b.cn", "a***@b.cn"),
        ("not-an-email", "***"),
    ],
)
def test_email_addresses_keep_the_first_letter_and_the_domain(raw: str, masked: str) -> None:
    assert mask_email(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"), [("张三", "张*"), ("欧阳娜娜", "欧***"), ("王", "*"), (" 李四 ", "李*")]
)
def test_names_keep_the_family_name(raw: str, masked: str) -> None:
    assert mask_name(raw) == masked


@pytest.mark.parametrize("masker", [mask_phone, mask_id_card, mask_email, mask_name, mask_text])
@pytest.mark.parametrize("empty", [None, ""])
def test_missing_values_stay_missing(masker: object, empty: str | None) -> None:
    assert masker(empty) == empty  # type: ignore[operator]


def test_free_text_is_masked_in_place_and_otherwise_untouched() -> None:
    text = (
        "我叫张三，电话13812345678，身份证430102199001011234，"
        "邮箱 zhangsan@example.com，银行卡6222 0212 3456 7890，座机0731-84567890。"
    )
    assert mask_text(text) == (
        "我叫张三，电话138****5678，身份证4301**********1234，"
        "邮箱 z***@example.com，银行卡6222 **** **** 7890，座机0731-****7890。"
    )


def test_full_width_digits_in_text_are_masked() -> None:
    assert mask_text("联系电话：１３８１２３４５６７８") == "联系电话：１３８****５６７８"


def test_a_bare_local_number_after_a_phone_word_is_masked() -> None:
    assert mask_text("联系电话:84567890谢谢") == "联系电话:****7890谢谢"


@pytest.mark.parametrize(
    "text",
    [
        "工单 20261123-0000042 已办结",
        "2026-11-23 上午 9:30 停水",
        "罚款 12000 元，门牌 58 号，3 栋 1201 室",
        "小区路灯坏了一个月没人修",
    ],
)
def test_text_without_personal_data_is_unchanged(text: str) -> None:
    assert mask_text(text) == text


def test_mask_record_masks_the_personal_fields_only() -> None:
    record = {
        "number": "20261123-0000042",
        "caller_phone": "13812345678",
        "caller_name": "张三",
        "text": "请回电13900001111",
        "address": "芙蓉区五一大道 1 号",
        "latitude": 28.19,
    }
    assert mask_record(record) == {
        "number": "20261123-0000042",
        "caller_phone": "138****5678",
        "caller_name": "张*",
        "text": "请回电139****1111",
        "address": "芙蓉区五一大道 1 号",
        "latitude": 28.19,
    }
    assert record["caller_phone"] == "13812345678"  # a copy, not in place


@pytest.mark.parametrize(
    ("role", "handling", "listing", "export"),
    [
        ("agent", True, False, False),
        ("supervisor", True, False, False),
        ("department", True, False, False),
        ("admin", True, False, True),
        ("system", False, False, False),
        ("anonymous", False, False, False),
    ],
)
def test_who_sees_personal_data_unmasked(
    role: str, handling: bool, listing: bool, export: bool
) -> None:
    assert can_see_personal_data(role) is handling
    assert can_see_personal_data(role, Purpose.HANDLING) is handling
    assert can_see_personal_data(role, Purpose.LIST) is listing
    assert can_see_personal_data(role, "export") is export


def test_an_unknown_purpose_sees_nothing() -> None:
    assert can_see_personal_data("admin", "curiosity") is False


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("回电138.1234.5678谢谢", "回电138.****.5678谢谢"),
        ("回电138/1234/5678", "回电138/****/5678"),
        ("1\u200b3\u200b8\u200b1234\u200b5678", "1\u200b3\u200b8\u200b****\u200b5678"),
        ("138\u200d1234\u20605678。", "138\u200d****\u20605678。"),
        ("我的电话是一三八一二三四五六七八", "我的电话是一三八****五六七八"),
        ("号码幺三八一二三四五六七八", "号码幺三八****五六七八"),
        ("身份证四三零一零二一九九零零一零一一二三四", "身份证四三零一**********一二三四"),
        ("一二三四五六七八", "一二三四五六七八"),
        ("三三两两来了一百多人", "三三两两来了一百多人"),
    ],
)
def test_numbers_written_with_dots_slashes_zero_width_or_chinese_numerals_are_masked(
    raw: str, masked: str
) -> None:
    assert mask_text(raw) == masked


def test_a_phone_field_in_those_spellings_is_masked() -> None:
    assert mask_phone("138.1234.5678") == "138.****.5678"
    assert mask_phone("一三八一二三四五六七八") == "一三八****五六七八"
