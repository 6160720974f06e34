"""What complaints may share: folding, key phrases per script, couriers and cities,
products by SKU or by the words app forms used for them, and redacted samples."""

from __future__ import annotations

import pytest

from services.policy import load_policy
from services.triage.insights.keys import (
    CaseKey,
    case_keys,
    fold,
    folded_terms,
    infer_products,
    item_terms,
    keywords,
    skus_of,
    text_features,
)
from services.triage.insights.redact import redact, sample_text

RULES = load_policy().insights
IGNORE = folded_terms(RULES.ignore_terms)


def features(text: str) -> tuple[list[str], list[str], list[str]]:
    found = text_features(text, RULES.couriers, RULES.cities, 5, IGNORE)
    return found.couriers, found.cities, found.phrases


def test_traditional_and_simplified_fold_to_one_spelling() -> None:
    assert fold("陶瓷馬克杯 ＭＵＧ") == fold("陶瓷马克杯 mug") == "陶瓷马克杯 mug"


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [("馬克杯的把手裂開了", "马克杯的把手裂开了"), ("黑貓送的包裹還沒到", "黑猫送的包裹还没到")],
)
def test_chinese_key_phrases_are_the_same_in_both_scripts(
    traditional: str, simplified: str
) -> None:
    assert keywords(traditional, 5, IGNORE) == keywords(simplified, 5, IGNORE)


def test_english_key_phrases_are_lemmas_without_grammar_or_ignored_words() -> None:
    found = keywords("The handle of my mug cracked. Mugs crack, handles crack!", 5, IGNORE)
    assert found[:3] == ["crack", "handle", "mug"]
    assert not {"the", "of", "my"} & set(found)
    assert "order" not in keywords("Where is my order? The order is late", 5, IGNORE)


def test_english_and_chinese_phrases_each_meet_their_own_kind() -> None:
    assert keywords("cracked handle", 5, IGNORE) == ["crack", "handle"]
    assert keywords("把手裂了", 5, IGNORE) == ["把手"]
    mixed = keywords("The 馬克杯 handle cracked", 5, IGNORE)
    assert mixed == ["马克杯", "handle", "crack"]


def test_couriers_and_cities_by_any_of_their_names() -> None:
    couriers, cities, phrases = features("黑貓把包裹送到臺北，延遲三天")
    assert (couriers, cities) == (["黑貓宅急便"], ["台北"])
    assert "黑猫" not in phrases and "台北" not in phrases  # they have keys of their own
    assert features("The FedEx parcel for New Taipei is late")[:2] == (["FedEx"], ["新北"])


def test_a_courier_named_after_a_city_is_a_courier_only() -> None:
    assert features("新竹物流弄丟了我的包裹")[:2] == (["新竹物流"], [])
    assert features("寄到新竹的包裹還沒到")[:2] == ([], ["新竹"])


def test_latin_names_match_whole_words_only() -> None:
    assert features("cups and saucers arrived broken")[0] == []
    assert features("UPS lost it")[0] == ["UPS"]


def test_skus_are_normalised_and_unique() -> None:
    items = [{"sku": " mug-01 "}, {"sku": "MUG-01"}, {"name": "no sku"}, {"sku": "ＴＥＡ-02"}, "x"]
    assert skus_of(items) == ["MUG-01", "TEA-02"]  # type: ignore[arg-type]


def test_products_are_recognised_by_words_used_for_exactly_one_product() -> None:
    learned = item_terms([{"sku": "mug-01", "name": "陶瓷馬克杯"}, {"sku": "TEA-02", "name": "陶瓷茶壺"},
                          {"sku": "MUG-01", "name": "Ceramic mug"}], 5, IGNORE)  # fmt: skip
    assert ("马克杯", "MUG-01") in learned and ("mug", "MUG-01") in learned
    known: dict[str, list[str]] = {}
    for term, sku in learned:
        known.setdefault(term, []).append(sku)
    assert infer_products(keywords("我的馬克杯裂了", 5, IGNORE), known, 2) == ["MUG-01"]
    assert infer_products(keywords("The mug cracked", 5, IGNORE), known, 2) == ["MUG-01"]
    # 陶瓷 (ceramic) names two products, so it names none.
    assert infer_products(keywords("陶瓷的東西裂了", 5, IGNORE), known, 2) == []


def test_case_keys_most_specific_first_each_once() -> None:
    keys = case_keys("delivery", ["MUG-01"], ["黑貓宅急便"], ["台北"], ["包裹", "包裹"])
    assert [key.kind for key in keys] == ["product", "courier", "city", "phrase"]
    assert keys[0].id == "product|delivery|MUG-01" and CaseKey.from_id(keys[0].id) == keys[0]
    assert keys[0].fields() == {"category": "delivery", "sku": "MUG-01"}
    assert keys[3].fields() == {"category": "delivery", "phrase": "包裹"}


def test_samples_carry_no_personal_data() -> None:
    text = ("我是王小明，陳小姐說馬克杯裂了，請寄信到 wang.xm@example.tw 或打 0912-345-678，"
            "訂單 2026111623045。My name is Jane Doe, ask Mr. Smith.")  # fmt: skip
    cleaned = redact(text)
    for personal in ("王小明", "陳小姐", "wang.xm", "0912", "2026111623045", "Jane", "Smith"):
        assert personal not in cleaned, personal
    assert "馬克杯裂了" in cleaned
    assert sample_text("主旨", "很長的內容" * 50, 40).endswith("…")
    assert len(sample_text("主旨", "很長的內容" * 50, 40)) == 40
