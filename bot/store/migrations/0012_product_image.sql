-- A product's picture (SPEC §4: `/shop product add|edit … image_url`), an https URL shown in
-- the checkout reply and the shop panel. NULL: none.
ALTER TABLE products ADD COLUMN image_url TEXT;
