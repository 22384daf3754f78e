"""Which guilds a process owns: Discord's shard formula and the process's shard range.

One process with no configuration owns every shard (count 1, ids (0,)). Several processes
share one PostgreSQL database, each with its `discord.shard_ids`; a delivery job is claimed
only by the process whose shards hold the job's guild (SPEC §9).
"""

from __future__ import annotations

from dataclasses import dataclass


def shard_for_guild(guild_id: int, shard_count: int) -> int:
    """Discord's shard of a guild: `(guild_id >> 22) % shard_count`."""
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    return (guild_id >> 22) % shard_count


def parse_shard_ids(text: str, shard_count: int) -> tuple[int, ...]:
    """`"0-3"`, `"0,2,5-7"` or `""` (all shards) → sorted ids, each below shard_count.

    Raises ValueError with a sentence an operator can act on.
    """
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    if not text.strip():
        return tuple(range(shard_count))
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise ValueError(
                f"shard id range {part!r} is not a number or a range like 0-3"
            ) from None
        if first > last:
            raise ValueError(f"shard id range {part!r} runs backwards")
        if first < 0 or last >= shard_count:
            raise ValueError(
                f"shard id range {part!r} is outside 0-{shard_count - 1} "
                f"(shard_count is {shard_count})"
            )
        ids.update(range(first, last + 1))
    return tuple(sorted(ids))


@dataclass(frozen=True, slots=True)
class Shards:
    """The shard range this process runs: `count` shards in all, of which it owns `ids`."""

    count: int = 1
    ids: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("shard_count must be at least 1")
        if not self.ids:
            raise ValueError("a process must own at least one shard")
        bad = [i for i in self.ids if not 0 <= i < self.count]
        if bad:
            raise ValueError(f"shard ids {bad} are outside 0-{self.count - 1}")

    @property
    def everything(self) -> bool:
        """True when this process owns every shard (the one-process default)."""
        return len(self.ids) == self.count

    def owns(self, guild_id: int) -> bool:
        """Whether the guild's shard is one of this process's."""
        return self.everything or shard_for_guild(guild_id, self.count) in self.ids

    def owns_shard_zero(self) -> bool:
        """Entitlement and subscription gateway events arrive on shard 0 only."""
        return 0 in self.ids
