-- Discord's own store as a second payment source (SPEC §6b, bot/skus.py).
-- An SKU of the app linked to one product of a guild, with its type (2 durable, 3 consumable,
-- 5 subscription) and name as Discord listed them when it was linked.
CREATE TABLE sku_links (
    guild_id BIGINT NOT NULL,
    sku_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL UNIQUE REFERENCES products (id),
    sku_type BIGINT NOT NULL,
    sku_name TEXT COLLATE "C" NOT NULL,
    linked_by BIGINT,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (guild_id, sku_id)
);
CREATE INDEX sku_links_sku ON sku_links (sku_id);

-- Every entitlement Discord told us about (gateway event or the hourly listing), merged so
-- the order of arrival does not matter: `deleted` and `consumed` only become true, `ends_at`
-- only moves later. The raw payload last seen is kept for support.
CREATE TABLE discord_entitlements (
    id BIGINT PRIMARY KEY,                 -- Discord's entitlement id
    sku_id BIGINT NOT NULL,
    user_id BIGINT,                        -- a user's entitlement
    guild_id BIGINT,                       -- a guild's own (a server subscription), no member roles
    type BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0,
    consumed BIGINT NOT NULL DEFAULT 0,
    ends_at TEXT COLLATE "C",
    payload TEXT COLLATE "C" NOT NULL,
    first_seen_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX discord_entitlements_guild ON discord_entitlements (guild_id);

-- The order an entitlement made in one guild (one per guild where its SKU is linked).
CREATE TABLE sku_orders (
    entitlement_id BIGINT NOT NULL REFERENCES discord_entitlements (id),
    guild_id BIGINT NOT NULL,
    order_id BIGINT NOT NULL UNIQUE REFERENCES orders (id),
    PRIMARY KEY (entitlement_id, guild_id)
);
