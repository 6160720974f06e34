from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from services.policy import PolicyError, PolicySource, load_policy
from services.policy.examples import LabeledExample, label_problems
from services.policy.model import DEFAULT_POLICY_FILE
from tests.support.policy_files import copy_policy


def test_bundled_policy_matches_policy_md() -> None:
    policy = load_policy()
    assert policy.business_time_zone == "Asia/Taipei"
    assert policy.currency == "TWD"
    targets = {name: (t.respond_within_hours, t.resolve_within_hours)
               for name, t in policy.triage.urgency.items()}  # fmt: skip
    assert targets == {"urgent": (2, 24), "high": (4, 48), "normal": (24, 72)}
    assert policy.triage.channel_first_response_minutes == {"email": 1440, "social": 60, "app": 15}
    assert policy.triage.escalation.repeat_window_days == 30
    assert policy.triage.escalation.influencer_followers == 10_000
    assert str(policy.triage.escalation.vip_lifetime_value) == "50000"
    comp = policy.compensation
    assert (comp.system_authority_limit, comp.supervisor_authority_limit) == (500, 3000)
    assert comp.customer_goodwill_cap == 2000 and comp.customer_cap_window_days == 90
    assert comp.offer_expires_hours == 72
    follow = policy.followup
    assert (follow.default_delay_days, follow.refund_delay_days) == (3, 7)
    assert (follow.send_window_start_hour, follow.send_window_end_hour) == (9, 20)
    approval = comp.approval
    assert (approval.remind_after_hours, approval.escalate_after_hours,
            approval.expire_at_top_after_hours) == (4, 12, 24)  # fmt: skip
    assert approval.approver_roles == ["supervisor", "manager"]
    assert comp.fulfilment_days == {"refund": 10, "shipping_refund": 10, "replacement": 3,
                                    "coupon": 0, "tier_upgrade": 1, "apology_only": 2}  # fmt: skip
    first_reply = policy.replies.first_reply
    assert "thank" in first_reply.thanks and "sorry" in first_reply.apology
    assert "我們會" in first_reply.next_step and "明天" in first_reply.time_words


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace('version = "2026.11-2"', 'version = ""'), "version"),
        (
            lambda text: text.replace("respond_within_hours = 2\n", "respond_within_hours = -2\n"),
            "respond_within_hours",
        ),
        (
            lambda text: text.replace(
                'business_time_zone = "Asia/Taipei"', 'business_time_zone = "Mars/Olympus"'
            ),
            "time zone",
        ),
        (lambda text: text + "\n[[[ not toml", "not valid TOML"),
        (
            lambda text: text.replace("char_ngram_min = 1\n", "char_ngram_min = 5\n"),
            "char_ngram_min must be <= char_ngram_max",
        ),
        (
            lambda text: text.replace(
                'examples = "triage/examples.jsonl"', 'examples = "nowhere.jsonl"'
            ),
            "cannot read examples file",
        ),
        (
            lambda text: text.replace(
                'system_authority_limit = "500"', 'system_authority_limit = "5000"'
            ),
            "supervisor_authority_limit",
        ),
        (
            lambda text: text.replace("remind_after_hours = 4", "remind_after_hours = 13"),
            "reminder must come before the escalation",
        ),
        (
            lambda text: text.replace(
                "expire_at_top_after_hours = 24", "expire_at_top_after_hours = 3"
            ),
            "reminder must come before the expiry at the top",
        ),
        (
            lambda text: text.replace("remind_after_hours = 4", "remind_after_hours = 0"),
            "approval.remind_after_hours: Input should be greater than 0",
        ),
        (
            lambda text: text.replace("escalate_after_hours = 12", "escalate_after_hours = -12"),
            "approval.escalate_after_hours: Input should be greater than 0",
        ),
        (
            lambda text: text.replace(
                'approver_roles = ["supervisor", "manager"]',
                'approver_roles = ["supervisor", "supervisor", "manager"]',
            ),
            "must not repeat a role",
        ),
        (
            lambda text: text.replace(
                'approver_roles = ["supervisor", "manager"]', 'approver_roles = ["supervisor"]'
            ),
            "must name supervisor and manager",
        ),
        (
            lambda text: text.replace(
                'approver_roles = ["supervisor", "manager"]',
                'approver_roles = ["manager", "supervisor"]',
            ),
            "supervisor before manager",
        ),
        (
            lambda text: text.replace(
                'approver_roles = ["supervisor", "manager"]', "approver_roles = []"
            ),
            "approver_roles: List should have at least 1 item",
        ),
        (
            lambda text: text.replace("[compensation.approval]\n", "[compensation.approvals]\n"),
            "compensation.approval: Field required",
        ),
        (lambda text: text.replace("tier_upgrade = 1\n", ""), "fulfilment_days lacks"),
        (lambda text: text.replace("\nrefund = 10\n", "\nrefund = -1\n"), "0 or more"),
        (
            lambda text: text.replace("tier_upgrade = 1\n", "tier_upgrade = 1\nvoucher = 2\n"),
            "fulfilment_days.voucher",
        ),
        (lambda text: text.replace("time_patterns = ['", "time_patterns = ['(", 1), "time pattern"),
        (
            lambda text: text.replace(
                'thanks = ["謝謝", "感謝", "谢谢", "感谢", "多謝", "thank", "appreciate"]',
                "thanks = []",
            ),
            "first_reply.thanks: List should have at least 1 item",
        ),
    ],
)
def test_bad_policy_file_is_refused_with_a_clear_message(
    tmp_path: Path, edit: object, message: str
) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(edit(DEFAULT_POLICY_FILE.read_text(encoding="utf-8")), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(PolicyError, match=message):
        load_policy(bad)


def test_reload_picks_up_edits_and_keeps_the_old_policy_on_a_bad_edit(tmp_path: Path) -> None:
    path = copy_policy(tmp_path)
    source = PolicySource(path)
    assert source.current().version == "2026.11-2"

    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace('version = "2026.11-2"', 'version = "2026.11-3"'), encoding="utf-8"
    )
    os.utime(path, (1, 1))  # a distinct mtime, whatever the file system's resolution
    assert source.current().version == "2026.11-3"

    path.write_text("version = 3\n", encoding="utf-8")
    os.utime(path, (2, 2))
    assert source.current().version == "2026.11-3"
    assert source.last_error and "invalid" in source.last_error


def _write_examples(path: Path, edit: object) -> None:
    examples = path.parent / "triage" / "examples.jsonl"
    lines = examples.read_text(encoding="utf-8").splitlines()
    examples.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [*lines, "{not json"], r"line \d+ is not JSON"),
        (
            lambda lines: [
                *lines,
                '{"id": "x1", "text": "hi", "category": "nonsense", "urgency": "normal"}',
            ],
            "category 'nonsense' is not a triage category",
        ),
        (
            lambda lines: [
                *lines,
                '{"id": "x2", "text": "hi", "category": "other", "urgency": "soon"}',
            ],
            "urgency",
        ),
        (lambda lines: [*lines, lines[0]], "appears twice"),
        (lambda lines: [line for line in lines if '"technical"' not in line], "fewer than"),
    ],
)
def test_bad_examples_are_refused_with_a_clear_message(
    tmp_path: Path, edit: object, message: str
) -> None:
    path = copy_policy(tmp_path)
    _write_examples(path, edit)
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_a_policy_without_its_own_examples_uses_the_bundled_ones(tmp_path: Path) -> None:
    alone = tmp_path / "candidate.toml"
    alone.write_text(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    examples = load_policy(alone).triage_examples
    assert examples is not None
    assert examples.path == DEFAULT_POLICY_FILE.parent / "triage" / "examples.jsonl"
    own = copy_policy(tmp_path / "own")
    mine = load_policy(own).triage_examples
    assert mine is not None and mine.path == own.parent / "triage" / "examples.jsonl"


def test_a_changed_examples_file_is_a_policy_change_and_a_bad_one_is_refused(
    tmp_path: Path,
) -> None:
    from services.triage.classifier import model_version

    path = copy_policy(tmp_path)
    source = PolicySource(path)
    first = source.current()
    assert first.triage_examples is not None
    examples = first.triage_examples.path
    version = model_version(first.triage_examples.digest, first.triage.model)

    _write_examples(path, lambda lines: [
        *lines, '{"id": "new-1", "text": "the app logs me out every minute", '
                '"category": "technical", "urgency": "normal"}'])  # fmt: skip
    os.utime(examples, (5, 5))
    second = source.current()
    assert second is not first and second.triage_examples is not None
    assert len(second.triage_examples.rows) == len(first.triage_examples.rows) + 1
    assert model_version(second.triage_examples.digest, second.triage.model) != version

    _write_examples(path, lambda lines: [*lines, "{broken"])
    os.utime(examples, (6, 6))
    assert source.current() is second
    assert source.last_error and "is not JSON" in source.last_error


def _row(id_: str, category: str, urgency: str, secondary: str | None = None) -> LabeledExample:
    return LabeledExample(id=id_, text="t", category=category, secondary=secondary, urgency=urgency)


def test_labels_that_contradict_the_guide_are_found() -> None:
    urgency_of = load_policy().triage.urgency_of
    rows = [
        _row("ok1", "delivery", "normal", "product_defect"),
        _row("ok2", "delivery", "high"),  # severe dissatisfaction
        _row("ok3", "product_safety", "urgent", "billing"),
        _row("ok4", "refund", "high", "delivery"),
        _row("x3", "other", "urgent"),
        _row("x4", "delivery", "high", "legal"),
        _row("x5", "billing", "normal"),
        _row("x6", "legal", "urgent", "product_safety"),
        _row("x7", "delivery", "normal", "delivery"),
    ]
    assert label_problems(rows, urgency_of) == [
        "x3: urgency urgent with other",
        "x4: urgency high with delivery/legal; legal comes before delivery",
        "x5: urgency normal below high of billing",
        "x6: product_safety comes before legal",
        "x7: secondary repeats the category",
    ]


def test_the_bundled_examples_follow_the_labeling_guide() -> None:
    policy = load_policy()
    assert policy.triage_examples is not None
    assert label_problems(policy.triage_examples.rows, policy.triage.urgency_of) == []


def test_approval_numbers_reload_and_a_bad_approval_edit_keeps_the_last_good_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.toml"
    shutil.copy(DEFAULT_POLICY_FILE, path)
    source = PolicySource(path)
    text = path.read_text(encoding="utf-8")

    faster = text.replace('version = "2026.11-2"', 'version = "faster"').replace(
        "remind_after_hours = 4", "remind_after_hours = 2"
    )
    path.write_text(faster, encoding="utf-8")
    os.utime(path, (1, 1))
    approval = source.current().compensation.approval
    assert (approval.remind_after_hours, approval.escalate_after_hours) == (2, 12)

    # An escalation before the reminder, then roles that would move an approval down:
    # each is refused and the services go on chasing approvals by the last good numbers.
    for mtime, bad in enumerate(
        (
            faster.replace("escalate_after_hours = 12", "escalate_after_hours = 1"),
            faster.replace('["supervisor", "manager"]', '["manager", "supervisor"]'),
        ),
        start=2,
    ):
        path.write_text(bad.replace('"faster"', '"broken"'), encoding="utf-8")
        os.utime(path, (mtime, mtime))
        assert source.current().version == "faster"
        assert source.current().compensation.approval.remind_after_hours == 2
        assert source.last_error and "approval" in source.last_error
