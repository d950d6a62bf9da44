"""The producers' partitioner keeps recent keys' hashes; it must place every key exactly where
Kafka's default partitioner does (other producers of the same topics use that one: a person's
records must all land on one partition, whoever wrote them)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import keyed_partitioner


def test_every_key_lands_where_the_default_partitioner_puts_it() -> None:
    rng = random.Random(7)
    default = DefaultPartitioner()
    for _ in range(3000):
        key = rng.randbytes(rng.randrange(0, 60))
        partitions = list(range(rng.choice([1, 3, 6, 12, 48])))
        expected = default(key, partitions, partitions)
        assert keyed_partitioner(key, partitions, partitions) == expected
        assert keyed_partitioner(key, partitions, partitions) == expected  # from the cache


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    assert keyed_partitioner(None, [0, 1, 2], [2]) == 2
