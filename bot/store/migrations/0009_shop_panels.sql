-- Shop panels (SPEC §4 `/shop panel`): a message in a channel with one embed and one Buy
-- button per product. The message is edited in place (a delivery job, bot/planning.py) when
-- a product in it changes; `version` counts those changes, so an edit that raced a newer
-- change is sent again. Products get an image for their embed (and the web shop).
ALTER TABLE products ADD COLUMN image_url TEXT;

CREATE TABLE shop_panels (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL UNIQUE,
    title TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    created_by INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX shop_panels_guild ON shop_panels (guild_id);

CREATE TABLE shop_panel_products (
    panel_id INTEGER NOT NULL REFERENCES shop_panels (id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL REFERENCES products (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (panel_id, product_id)
);
CREATE INDEX shop_panel_products_product ON shop_panel_products (product_id);
