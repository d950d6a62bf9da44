"""Letters as PDF documents (reportlab), and the daily print batch a print provider takes.

Each letter is two PDF files in the folder of its day (Paris date of sending),
``<data_dir>/letters/<YYYY-MM-DD>/``: ``<action_id>.pdf`` (the letter: CPAM sender block,
recipient's address placed for a window envelope, place and date, subject, text, signature) and
``<action_id>-falc.pdf`` (the easy-read version, enclosed in the same envelope: larger type,
short sentences, one idea per line). Rendering is deterministic (reportlab ``invariant``): the
same action renders the same bytes, so a re-render after a crash overwrites the file with
itself.

The folder is the print batch: ``manifest.json`` and ``manifest.csv`` list every letter of the
day once (built from the database, never appended to, so a retry cannot list a letter twice).
The manifest names files and counts pages; it holds no personal data (the address is printed
in the PDF, read through the envelope window).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib.enums import TA_JUSTIFY, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.notification.channels import TransientSendError
from services.notification.templates import Text

PARIS = ZoneInfo("Europe/Paris")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
          "octobre", "novembre", "décembre")

_BODY = ParagraphStyle("body", fontName="Helvetica", fontSize=10.5, leading=14.5,
                       alignment=TA_JUSTIFY, spaceAfter=7)
_SMALL = ParagraphStyle("small", fontName="Helvetica", fontSize=9.5, leading=12.5,
                        alignment=TA_LEFT)
_ADDRESS = ParagraphStyle("address", fontName="Helvetica", fontSize=10.5, leading=13.5)
_SUBJECT = ParagraphStyle("subject", parent=_BODY, fontName="Helvetica-Bold", spaceBefore=8,
                          spaceAfter=10, alignment=TA_LEFT)
_FALC = ParagraphStyle("falc", fontName="Helvetica", fontSize=15, leading=22, alignment=TA_LEFT,
                       spaceAfter=12)
_FALC_TITLE = ParagraphStyle("falc-title", parent=_FALC, fontName="Helvetica-Bold", fontSize=19,
                             leading=25, spaceAfter=16)


@dataclass(frozen=True)
class Letter:
    action_id: str
    sender: tuple[str, ...]
    recipient: tuple[str, ...]
    when: datetime
    text: Text
    falc: Text
    signature: str
    reference: str


def french_date(d: date) -> str:
    return f"{d.day}{'er' if d.day == 1 else ''} {MONTHS[d.month - 1]} {d.year}"


def paris_day(when: datetime) -> date:
    return when.astimezone(PARIS).date()


def address_lines(nom: str, prenom: str, adresse: dict[str, Any]) -> tuple[str, ...]:
    lines = [f"{prenom} {nom}".strip(), adresse["ligne1"]]
    if adresse.get("ligne2"):
        lines.append(adresse["ligne2"])
    lines.append(f"{adresse['code_postal']} {str(adresse['commune']).upper()}")
    return tuple(lines)


def _lines(lines: tuple[str, ...], style: ParagraphStyle) -> Paragraph:
    return Paragraph("<br/>".join(escape(line) for line in lines), style)


def _head(letter: Letter) -> list[Any]:
    head = Table(
        [[_lines(letter.sender, _SMALL), ""],
         ["", _lines(letter.recipient, _ADDRESS)]],
        colWidths=[95 * mm, 80 * mm], rowHeights=[30 * mm, 32 * mm],
    )
    head.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                              ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return [head, Spacer(1, 6 * mm),
            Paragraph(f"Le {french_date(paris_day(letter.when))}", _BODY),
            Paragraph(f"Référence : {escape(letter.reference)}", _SMALL)]


def render_standard(letter: Letter) -> tuple[bytes, int]:
    t = letter.text
    story: list[Any] = _head(letter)
    story.append(Paragraph(f"Objet : {escape(t.subject)}", _SUBJECT))
    story.append(Paragraph("Madame, Monsieur,", _BODY))
    story += [Paragraph(p, _BODY) for p in t.paragraphs]
    if t.closing:
        story.append(Paragraph(t.closing, _BODY))
    story += [Spacer(1, 8 * mm), Paragraph(escape(letter.signature), _BODY)]
    return _build(story, f"{t.subject}")


def render_falc(letter: Letter) -> tuple[bytes, int]:
    t = letter.falc
    story: list[Any] = _head(letter)
    story.append(Spacer(1, 4 * mm))
    story.append(Paragraph("Document facile à lire et à comprendre", _SMALL))
    story.append(Paragraph(escape(t.subject), _FALC_TITLE))
    story += [Paragraph(p, _FALC) for p in t.paragraphs]
    if t.closing:
        story.append(Paragraph(t.closing, _FALC))
    return _build(story, f"{t.subject} (facile à lire)")


def _build(story: list[Any], title: str) -> tuple[bytes, int]:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=18 * mm, title=title,
                            author="Assurance Maladie", invariant=1)
    doc.build(story)
    return buf.getvalue(), int(doc.page)


@dataclass(frozen=True)
class StoredLetter:
    day: str
    files: tuple[str, ...]
    sha256: tuple[str, ...]
    pages: tuple[int, ...]


def write_letter(root: Path, letter: Letter) -> StoredLetter:
    """Render both versions into the day's folder (atomic writes; rewriting is harmless)."""
    day = paris_day(letter.when).isoformat()
    folder = root / day
    folder.mkdir(parents=True, exist_ok=True)
    files, sums, pages = [], [], []
    for suffix, (pdf, count) in (("", render_standard(letter)), ("-falc", render_falc(letter))):
        name = f"{letter.action_id}{suffix}.pdf"
        _atomic_write(folder / name, pdf)
        files.append(name)
        sums.append(hashlib.sha256(pdf).hexdigest())
        pages.append(count)
    return StoredLetter(day, tuple(files), tuple(sums), tuple(pages))


class Renderer:
    """Where letters are rendered (two PDFs: pure CPU, about 14 ms a letter here).

    ``processes`` > 0: in that many worker processes, started at the first letter. The
    rendering then runs beside the service's event loop, on another core, instead of holding
    its interpreter lock (with ``asyncio.to_thread`` the loop's other firings, consumers and
    HTTP requests waited behind each letter); and a letter that kills its worker (memory, a
    crash of the library) fails its own attempt, as a transient failure retried later and
    reported failed after the attempts allowed, instead of taking the service down. ``0``: in
    a thread of the service (tests, or a machine with one core)."""

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def write(self, root: Path, letter: Letter) -> StoredLetter:
        if self.processes <= 0:
            return await asyncio.to_thread(write_letter, root, letter)
        pool = self._pool or self._start()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, write_letter, root,
                                                                    letter)
        except BrokenProcessPool:
            if self._pool is pool:  # the next letter gets a new pool
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise TransientSendError("letter renderer process lost") from None

    def _start(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, not a fork of a process that runs threads and an event
        # loop (the service's entry point keeps the ``__main__`` guard: uvicorn's does)
        self._pool = ProcessPoolExecutor(self.processes,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_die_with, initargs=(os.getpid(),))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _die_with(parent: int) -> None:
    """In a worker: end when the service ends, even killed (SIGKILL leaves no time to stop
    the pool, and an orphan worker would wait for letters forever). Linux's parent-death
    signal; elsewhere a thread that watches the parent."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it died before the call
            os._exit(0)
    except (OSError, AttributeError):
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(0)

        threading.Thread(target=watch, daemon=True, name="parent-watch").start()


class ManifestWriter:
    """The print batch of ``day`` written as its letters come, in ``_id`` order, one at a
    time: a monthly batch gives a day hundreds of thousands of letters, and holding them all
    (the documents, then the JSON text) took about 3 KB of memory per letter at each rewrite.
    The entries go to temporary files as they come; :meth:`close` puts the counts in front of
    them and replaces ``manifest.json`` and ``manifest.csv`` (each atomically)."""

    HEADER = ("action_id", "fichier_courrier", "fichier_falc", "pages", "parcours", "modele")

    def __init__(self, root: Path, day: str) -> None:
        self.folder = root / day
        self.folder.mkdir(parents=True, exist_ok=True)
        self.day = day
        self.letters = 0
        self.sheets = 0
        self._entries = self._temp("lettres.json")
        self._csv_path = self._temp("manifest.csv")
        self._body = self._entries.open("w", encoding="utf-8")
        self._rows = self._csv_path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._rows, delimiter=";")
        self._csv.writerow(self.HEADER)

    def _temp(self, name: str) -> Path:
        return self.folder / f".{name}.{os.getpid()}.{id(self)}.tmp"

    def add(self, d: dict[str, Any]) -> None:
        entry = {"action_id": d["_id"], "fichiers": d["fichiers"], "sha256": d["sha256"],
                 "pages": d["pages"], "parcours": d.get("parcours"), "modele": d.get("modele"),
                 "enveloppe": "C5 fenêtre"}
        self._body.write(("," if self.letters else "") + "\n    "
                         + json.dumps(entry, ensure_ascii=False))
        self._csv.writerow([entry["action_id"], *entry["fichiers"][:2], sum(entry["pages"]),
                            entry["parcours"], entry["modele"]])
        self.letters += 1
        self.sheets += sum(entry["pages"])

    def close(self) -> Path:
        """Write the manifests in place of the former ones (blocking: a large day's copy)."""
        self._body.close()
        self._rows.close()
        manifest = self.folder / "manifest.json"
        final = self._temp("manifest.json")
        try:
            with final.open("w", encoding="utf-8") as out, self._entries.open(
                    encoding="utf-8") as body:
                out.write(f'{{\n  "jour": {json.dumps(self.day)},\n  "courriers": {self.letters},'
                          f'\n  "feuilles": {self.sheets},\n  "lettres": [')
                shutil.copyfileobj(body, out)
                out.write("\n  ]\n}\n" if self.letters else "]\n}\n")
            os.replace(final, manifest)
            os.replace(self._csv_path, self.folder / "manifest.csv")
        finally:
            self.abort()
        return manifest

    def abort(self) -> None:
        """Drop the temporary files (the former manifests stay)."""
        self._body.close()
        self._rows.close()
        for path in (self._entries, self._csv_path, self._temp("manifest.json")):
            path.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
