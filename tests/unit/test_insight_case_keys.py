"""Which keys a case is counted under (detection.keys_of): a named cause (product,
courier, city) or else a few phrases; products learnt from app forms' names and texts;
and a turn makes only the samples its keys keep."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.policy import load_policy
from services.triage.insights import detection
from services.triage.insights.keys import CaseKey, text_terms
from services.triage.insights.turn import Observation, plan_turn

POLICY = load_policy()
RULES = POLICY.insights
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
Document = dict[str, Any]


class TermStore:
    """InsightStore's product words, in memory."""

    def __init__(self) -> None:
        self.terms: dict[str, list[str]] = {}
        self.written = 0

    async def skus_by_term(self, terms: Iterable[str]) -> dict[str, list[str]]:
        return {term: list(self.terms[term]) for term in terms if term in self.terms}

    async def learn_terms(
        self, pairs: Sequence[tuple[str, str]], known: dict[str, list[str]]
    ) -> None:
        for term, sku in pairs:
            skus = self.terms.setdefault(term, [])
            if sku not in skus and len(skus) < 2:
                skus.append(sku)
                self.written += 1


def keys_of(store: TermStore, text: str, category: str = "product_defect",
            sku: str | None = None, name: str = "") -> list[CaseKey]:  # fmt: skip
    opened: Document = {"case_number": "CS-1", "subject": "", "text": text}
    if sku:
        opened["items"] = [{"sku": sku, "name": name}]
    return asyncio.run(
        detection.keys_of(store, POLICY.insights, opened, category, learn=True)  # type: ignore[arg-type]
    )


async def _publish(messages: list[Document]) -> None:
    return None


def test_text_terms_only_when_the_form_names_one_product() -> None:
    assert text_terms(["MUG-01"], ["mug", "crack", "mug"]) == [
        ("mug", "MUG-01"),
        ("crack", "MUG-01"),
    ]
    assert text_terms(["MUG-01", "TEA-02"], ["mug"]) == []
    assert text_terms([], ["mug"]) == []


def test_a_case_with_a_named_cause_is_not_counted_under_phrases() -> None:
    store = TermStore()
    keys = keys_of(
        store, "My mug arrived cracked along the handle", sku="MUG-01", name="陶瓷馬克杯"
    )
    assert [key.kind for key in keys] == ["product"]
    keys = keys_of(store, "黑貓宅急便把我在台北的包裹弄丟了", category="delivery")
    assert [key.kind for key in keys] == ["courier", "city"]


def test_a_case_without_one_has_at_most_phrases_per_case_phrases() -> None:
    keys = keys_of(TermStore(), "The checkout page shows a blank screen after login, "
                   "payment button greyed, coupon field broken, address form resets")  # fmt: skip
    assert keys and all(key.kind == "phrase" for key in keys)
    assert len(keys) == RULES.phrases_per_case == 3


def test_an_app_forms_own_words_teach_the_product_in_the_customers_language() -> None:
    store = TermStore()
    # The product is named in Chinese only; the customer writes in English.
    keys_of(store, "My mug arrived cracked along the handle", sku="MUG-01", name="陶瓷馬克杯")
    assert store.terms["mug"] == ["MUG-01"] and store.terms["马克杯"] == ["MUG-01"]
    mail = keys_of(store, "The mug handle cracked on first use")
    assert [(key.kind, key.value) for key in mail] == [("product", "MUG-01")]
    # A word the forms used for two products names neither: the mail falls back to phrases.
    keys_of(store, "The handle of my teapot broke", sku="TEA-02", name="陶瓷茶壺")
    assert store.terms["handle"] == ["MUG-01", "TEA-02"]
    assert {key.kind for key in keys_of(store, "the handle fell off")} == {"phrase"}


def test_a_turn_makes_only_the_samples_its_keys_keep() -> None:
    made: list[str] = []

    def sample(number: int) -> Any:
        def make() -> str:
            made.append(f"CS-{number}")
            return f"text {number}"

        return make

    key = CaseKey("product", "product_defect", "MUG-01")
    turn = [Observation(f"CS-{n}", f"customer:C-{n}", T0 + timedelta(seconds=n), (key,), sample(n))
            for n in range(40)]  # fmt: skip
    plan = plan_turn(turn, {}, {}, RULES, POLICY.version, T0)
    pushed = plan.keys[key.id]["$push"]["samples"]["$each"]
    assert [s["c"] for s in pushed] == ["CS-37", "CS-38", "CS-39"]
    assert sorted(made) == ["CS-37", "CS-38", "CS-39"]
