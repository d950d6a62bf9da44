"""shared.mongo.bulk_write_chunked: at most WRITE_STATEMENTS_PER_COMMAND statements per
command (FerretDB 1.24 holds a connection per statement until the command ends), in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.mongo import WRITE_STATEMENTS_PER_COMMAND, bulk_write_chunked


@dataclass
class Result:
    modified_count: int
    upserted_count: int


class Collection:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], bool]] = []

    async def bulk_write(self, ops: list[Any], ordered: bool) -> Result:
        self.calls.append((ops, ordered))
        return Result(modified_count=len(ops) - 1, upserted_count=1)


async def test_a_large_bulk_goes_in_small_commands_in_order() -> None:
    col = Collection()
    ops = list(range(2 * WRITE_STATEMENTS_PER_COMMAND + 3))
    assert await bulk_write_chunked(col, ops, ordered=True) == len(ops)
    assert [len(c) for c, _ in col.calls] == [WRITE_STATEMENTS_PER_COMMAND] * 2 + [3]
    assert [op for c, _ in col.calls for op in c] == ops
    assert all(ordered for _, ordered in col.calls)
    assert WRITE_STATEMENTS_PER_COMMAND <= 50, "well below the local database's pool of 300"


async def test_nothing_to_write_sends_nothing() -> None:
    col = Collection()
    assert await bulk_write_chunked(col, [], ordered=False) == 0
    assert col.calls == []
