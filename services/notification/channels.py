"""Adapters of the sending channels: e-mail over SMTP, SMS through an HTTP provider.

Both take an idempotency key (the action id) so that a send repeated after a crash is
recognisable downstream:

- SMS: the key goes in the ``Idempotency-Key`` header; the provider answers a repeated key with
  the first answer and does not send again (the usual contract of SMS gateways; our test
  provider implements it).
- E-mail: the key becomes a deterministic ``Message-ID`` (``<action_id@domain>``). SMTP has no
  idempotency: a crash after the server accepted the message and before we recorded it makes
  the retry deliver a second copy with the same Message-ID, which mail clients and most
  gateways collapse. That window is milliseconds wide; it is the residual risk.

Errors: :class:`PermanentSendError` (the recipient or message is refused: reported as
``echec``), :class:`TransientSendError` (server unreachable, 5xx, timeout: retried later).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

import httpx


class PermanentSendError(Exception):
    pass


class TransientSendError(Exception):
    pass


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str
    key: str
    when: datetime


@dataclass(frozen=True)
class Sms:
    to: str
    text: str
    key: str


class EmailSender(Protocol):
    async def send(self, email: Email) -> str: ...


class SmsSender(Protocol):
    async def send(self, sms: Sms) -> str: ...


def message_id(key: str, domain: str) -> str:
    return f"<{key}@{domain}>"


class SmtpEmailSender:
    def __init__(self, host: str, port: int, sender: str, domain: str, *, timeout: float = 10.0,
                 starttls: bool = False, user: str | None = None,
                 password: str | None = None) -> None:
        self.host, self.port, self.sender, self.domain = host, port, sender, domain
        self.timeout, self.starttls, self.user, self.password = timeout, starttls, user, password

    def build(self, email: Email) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = format_datetime(email.when)
        msg["Message-ID"] = message_id(email.key, self.domain)
        msg["X-Parcours-Action"] = email.key
        msg.set_content(email.body)
        return msg

    async def send(self, email: Email) -> str:
        msg = self.build(email)
        await asyncio.to_thread(self._send_sync, msg)
        return str(msg["Message-ID"])

    def _send_sync(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user and self.password:
                    smtp.login(self.user, self.password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            if all(500 <= c < 600 for c in codes):
                raise PermanentSendError(f"recipient refused ({codes})") from None
            raise TransientSendError(f"recipient deferred ({codes})") from None
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentSendError(f"smtp {exc.smtp_code}") from None
            raise TransientSendError(f"smtp {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientSendError(f"smtp unavailable: {type(exc).__name__}") from None


class HttpSmsSender:
    """POST ``{"to", "text", "sender", "reference"}`` with ``Idempotency-Key``; 2xx = accepted."""

    def __init__(self, url: str, token: str | None, sender: str, *, timeout: float = 10.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url, self.token, self.sender = url, token, sender
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, sms: Sms) -> str:
        try:
            resp = await self._client.post(
                self.url,
                json={"to": sms.to, "text": sms.text, "sender": self.sender, "reference": sms.key},
                headers={"Idempotency-Key": sms.key,
                         **({"Authorization": f"Bearer {self.token}"} if self.token else {})},
            )
        except httpx.HTTPError as exc:
            raise TransientSendError(f"sms provider unreachable: {type(exc).__name__}") from None
        if resp.status_code in (408, 409, 425, 429) or resp.status_code >= 500:
            raise TransientSendError(f"sms provider http {resp.status_code}")
        if resp.status_code >= 400:
            raise PermanentSendError(f"sms refused http {resp.status_code}")
        try:
            return str(resp.json().get("id", sms.key))
        except ValueError:
            return sms.key
