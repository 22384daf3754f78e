-- Several processes over one database (issue 16).
-- identify_slots: when each IDENTIFY bucket (`shard_id % max_concurrency`) may next
-- IDENTIFY, fleet-wide: Discord allows one IDENTIFY per bucket per 5 seconds per token,
-- whichever process sends it (bot/fleet.py).
CREATE TABLE identify_slots (
    bucket BIGINT PRIMARY KEY,
    last_at TEXT COLLATE "C" NOT NULL
);

-- fleet_leases: periodic work done once per fleet (expiry, Stripe catch-up, Discord
-- entitlement reconcile) runs in the process holding the lease `name`; it renews it each
-- cycle, another process takes it over once `expires_at` passed, and `fencing` grows at
-- every takeover so a holder can tell it was replaced.
CREATE TABLE fleet_leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT COLLATE "C" NOT NULL,
    fencing BIGINT NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);
