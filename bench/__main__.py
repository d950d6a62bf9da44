"""`make bench`: every benchmark, printed as Markdown rows for docs/performance.md."""

import sys

from bench import signalement_intake

if __name__ == "__main__":
    sys.exit(signalement_intake.main(sys.argv[1:]))
