"""What the demo gives notification in place of the CPAM's mail relay and SMS provider: a real
SMTP server (aiosmtpd) that writes each message it receives to ``<data>/boite-mail/*.eml``, and
an HTTP endpoint that takes the SMS provider's requests and appends them to
``<data>/sms/envoyes.jsonl`` (a repeated ``Idempotency-Key`` is acknowledged, not re-sent).
Both on free 127.0.0.1 ports, in threads of the demo's process."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from deploy.local.infra import free_port


class _Mailbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = len(list(folder.glob("*.eml")))
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.count += 1
            name = self.folder / f"{self.count:06d}.eml"
        name.write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class Sinks:
    """``with Sinks(data_dir) as sinks: env = sinks.notification_env()``."""

    def __init__(self, data_dir: Path) -> None:
        self.mail_dir = data_dir / "boite-mail"
        self.sms_file = data_dir / "sms" / "envoyes.jsonl"

    def __enter__(self) -> Sinks:
        from aiosmtpd.controller import Controller

        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.sms_file.parent.mkdir(parents=True, exist_ok=True)
        self.smtp_port, self.sms_port = free_port(), free_port()
        self._smtp = Controller(_Mailbox(self.mail_dir), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()
        sms_file, seen, lock = self.sms_file, set(), threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                key = self.headers.get("Idempotency-Key")
                with lock:
                    if key not in seen:
                        seen.add(key)
                        with sms_file.open("a") as f:
                            f.write(json.dumps({"cle": key, **body}, ensure_ascii=False) + "\n")
                data = json.dumps({"id": key, "statut": "accepte"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._sms = ThreadingHTTPServer(("127.0.0.1", self.sms_port), Handler)
        threading.Thread(target=self._sms.serve_forever, daemon=True).start()
        return self

    def notification_env(self) -> dict[str, str]:
        return {"PARCOURS_NOTIFICATION_SMTP_HOST": "127.0.0.1",
                "PARCOURS_NOTIFICATION_SMTP_PORT": str(self.smtp_port),
                "PARCOURS_NOTIFICATION_SMS_URL": f"http://127.0.0.1:{self.sms_port}/v1/messages"}

    def __exit__(self, *exc: Any) -> None:
        self._smtp.stop()
        self._sms.shutdown()
        self._sms.server_close()
