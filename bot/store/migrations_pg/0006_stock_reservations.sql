-- Stock reservations (bot/shop.py): a pending order holds one unit of stock (and, for a
-- product that delivers license keys, one key: `license_keys.order_id` set, `delivered_at`
-- NULL) until it is paid or closed. The expiry loop finds pending orders whose checkout
-- link can no longer be paid and gives their reservation back.
CREATE INDEX orders_pending_expiry ON orders (status, checkout_expires_at);
