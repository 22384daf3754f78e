-- Two languages (issue 12) and totals in the admin log's burst summaries.
-- guild_locales: the language of a guild's DMs, panels and log notices. `chosen` is what an
-- admin set with `/shop settings locale` (NULL: none), `preferred` what Discord reports as
-- the guild's preferred locale (GUILD_CREATE), kept so a notice planned while the gateway
-- is down still speaks the guild's language.
CREATE TABLE guild_locales (
    guild_id BIGINT PRIMARY KEY,
    chosen TEXT COLLATE "C",
    preferred TEXT COLLATE "C",
    set_by BIGINT,
    updated_at TEXT COLLATE "C" NOT NULL
);

-- A sale's or refund's amount, so a summary of many can show the total per currency.
ALTER TABLE log_notices ADD COLUMN amount BIGINT;
ALTER TABLE log_notices ADD COLUMN currency TEXT COLLATE "C";
