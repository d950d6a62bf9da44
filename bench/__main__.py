"""`make bench` (= `python -m bench`): the default set, written into docs/performance.md.

    python -m bench                      # intake alone (20,000) then end to end (20,000)
    python -m bench intake [N] [BATCH]   # signalement's intake alone
    python -m bench e2e [N] [--instances K] [--profile S] [--no-baseline] [--whole] [--write]
    python -m bench scale [N] [--max K]  # end to end with 1..K instances per service
    python -m bench reporting [PERSONS ...] [--write]  # one read of the indicators vs the store
    python -m bench print-batch [LETTERS ...] [--write]  # one rewrite of a day's print batch
    python -m bench cancellations [N] [--write]  # a batch's cancellations, together or one by one
"""

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench import cancellations, e2e, print_batch, reporting_read, signalement_intake


def scale(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("n", type=int, nargs="?", default=5_000)
    parser.add_argument("--max", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    results = [asyncio.run(e2e.run(args.n, k, baseline=(k == 1)))
               for k in range(1, args.max + 1)]
    text = e2e.report(results, " ".join(["python -m bench scale", *argv]))
    print(text)
    if args.write:
        e2e.write_section("scale", text)
    return 0


@contextlib.contextmanager
def infrastructure() -> Iterator[None]:
    """The broker and database named by ``PARCOURS_KAFKA_BOOTSTRAP_SERVERS`` and
    ``PARCOURS_MONGO_URI``, else a running ``make up``, else a ``deploy/local`` of the bench's
    own on free ports (Kafka, FerretDB, PostgreSQL), stopped at the end."""
    from deploy.local.infra import LocalInfra, port_open

    if os.environ.get("PARCOURS_KAFKA_BOOTSTRAP_SERVERS") or port_open(9092):
        yield
        return
    state = Path(tempfile.mkdtemp(prefix="parcours-bench-infra-"))
    local = LocalInfra.ephemeral(state)
    try:
        local.up(services=False)
        os.environ["PARCOURS_KAFKA_BOOTSTRAP_SERVERS"] = local.bootstrap_servers
        os.environ["PARCOURS_MONGO_URI"] = local.mongo_uri
        yield
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv and (argv[0] in ("-h", "--help") or argv[0] not in _COMMANDS):
        print(__doc__)
        return 0 if argv[0] in ("-h", "--help") else 2
    if argv and argv[0] == "e2e" and any(a in ("-h", "--help") for a in argv[1:]):
        return e2e.main(argv[1:])  # argparse prints the help; no infrastructure started
    with infrastructure():
        return _main(argv)


_COMMANDS = ("intake", "e2e", "scale", "reporting", "print-batch", "cancellations")


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "intake":
        return signalement_intake.main(argv[1:])
    if argv and argv[0] == "e2e":
        return e2e.main(argv[1:])
    if argv and argv[0] == "scale":
        return scale(argv[1:])
    if argv and argv[0] == "reporting":
        return reporting_read.main(argv[1:])
    if argv and argv[0] == "print-batch":
        return print_batch.main(argv[1:])
    if argv and argv[0] == "cancellations":
        return cancellations.main(argv[1:])
    signalement_intake.main(["20000", "--write"])
    return e2e.main(["20000", "--profile", "60", "--write"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
