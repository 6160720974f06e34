"""Customer-facing acknowledgement texts. Checked against the policy's banned phrases."""

from __future__ import annotations

from datetime import datetime

ACK_TEMPLATES: dict[str, str] = {
    "zh-Hant": (
        "您好，謝謝您告訴我們這件事，造成您的不便，我們深感抱歉。"
        "您的案件編號是 {case_number}，專人已開始了解與處理。"
        "我們會在 {reply_by} 前回覆您處理進度。"
    ),
    "zh-Hans": (
        "您好，谢谢您告诉我们这件事，给您带来不便，我们深感抱歉。"
        "您的案件编号是 {case_number}，专人已开始了解与处理。"
        "我们会在 {reply_by} 前回复您处理进度。"
    ),
    "en": (
        "Hello, thank you for letting us know, and we are sorry for the trouble this has caused. "
        "Your case number is {case_number}; a member of our team is already looking into it. "
        "We will update you on the next steps by {reply_by}."
    ),
}


def acknowledgement(language: str, case_number: str, reply_by: datetime) -> tuple[str, str]:
    """(template name, body) in the customer's language, English when we have none."""
    chosen = language if language in ACK_TEMPLATES else "en"
    body = ACK_TEMPLATES[chosen].format(
        case_number=case_number, reply_by=reply_by.strftime("%Y-%m-%d %H:%M")
    )
    return f"case_acknowledgement.{chosen}", body
