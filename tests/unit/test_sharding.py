"""Shard ownership: Discord's formula and the shard-range syntax operators type."""

from __future__ import annotations

import pytest

from bot.sharding import Shards, parse_shard_ids, shard_for_guild


def test_shard_for_guild_is_discords_formula() -> None:
    guild = 81384788765712384  # Discord's docs example guild
    assert shard_for_guild(guild, 16) == (guild >> 22) % 16
    assert shard_for_guild(guild, 1) == 0


@pytest.mark.parametrize(
    ("text", "count", "ids"),
    [
        ("", 4, (0, 1, 2, 3)),
        ("0-3", 16, (0, 1, 2, 3)),
        ("0,2,5-6", 8, (0, 2, 5, 6)),
        ("3", 4, (3,)),
    ],
)
def test_shard_ids_parse(text: str, count: int, ids: tuple[int, ...]) -> None:
    assert parse_shard_ids(text, count) == ids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4-7", "outside 0-3"),
        ("3-1", "runs backwards"),
        ("a-b", "not a number"),
        ("-1", "not a number"),
    ],
)
def test_bad_shard_ids_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard_ids(text, 4)


def test_a_process_owns_only_the_guilds_on_its_shards() -> None:
    shards = Shards(count=4, ids=(0, 1))
    guilds = [(n << 22) for n in range(8)]
    assert [shards.owns(g) for g in guilds] == [True, True, False, False] * 2
    assert Shards().owns(guilds[3]) and Shards().everything
    assert shards.owns_shard_zero() and not Shards(4, (2,)).owns_shard_zero()
    with pytest.raises(ValueError, match="outside"):
        Shards(count=2, ids=(2,))
