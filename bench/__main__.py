"""`make bench` (= `python -m bench`): the default set, written into docs/performance.md.

    python -m bench                      # intake alone (20,000) then end to end (20,000)
    python -m bench intake [N] [BATCH]   # signalement's intake alone
    python -m bench e2e [N] [--instances K] [--profile S] [--no-baseline] [--write]
    python -m bench scale [N] [--max K]  # end to end with 1..K instances per service
"""

import asyncio
import sys

from bench import e2e, signalement_intake


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


def main(argv: list[str]) -> int:
    if argv and argv[0] == "intake":
        return signalement_intake.main(argv[1:])
    if argv and argv[0] == "e2e":
        return e2e.main(argv[1:])
    if argv and argv[0] == "scale":
        return scale(argv[1:])
    signalement_intake.main(["20000", "--write"])
    return e2e.main(["20000", "--profile", "60", "--write"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
