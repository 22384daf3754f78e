-- One grammar for job keys (bot/planning.py). `open_key`: at most one pending or running job
-- per key, for repairs that may repeat over time (rejoin re-grants, reconciliation fixes).
ALTER TABLE delivery_jobs ADD COLUMN open_key TEXT;
CREATE UNIQUE INDEX delivery_jobs_open_key ON delivery_jobs (open_key)
    WHERE open_key IS NOT NULL AND status IN ('pending', 'running');

-- Keys written before the grammar, rewritten so an effect queued then is still never
-- queued again. `revoke:entitlement:E:cC:role:R` → `entitlement:E:revoke:role:R[:cC]`.
UPDATE delivery_jobs SET dedupe_key =
    'entitlement:' || substr(dedupe_key, 20, instr(substr(dedupe_key, 20), ':c') - 1)
    || ':revoke:role:' || substr(dedupe_key, instr(dedupe_key, ':role:') + 6)
    || CASE substr(dedupe_key, 20 + instr(substr(dedupe_key, 20), ':c') + 1,
                   instr(dedupe_key, ':role:') - (20 + instr(substr(dedupe_key, 20), ':c') + 1))
       WHEN '0' THEN ''
       ELSE ':c' || substr(dedupe_key, 20 + instr(substr(dedupe_key, 20), ':c') + 1,
                   instr(dedupe_key, ':role:') - (20 + instr(substr(dedupe_key, 20), ':c') + 1))
       END
WHERE dedupe_key LIKE 'revoke:entitlement:%:c%:role:%';

-- `notice:entitlement:E:cC:ended` → `entitlement:E:notice:ended[:cC]`.
UPDATE delivery_jobs SET dedupe_key =
    'entitlement:' || substr(dedupe_key, 20, instr(substr(dedupe_key, 20), ':c') - 1)
    || ':notice:ended'
    || CASE substr(dedupe_key, 20 + instr(substr(dedupe_key, 20), ':c') + 1,
                   length(dedupe_key) - 6 - (20 + instr(substr(dedupe_key, 20), ':c')))
       WHEN '0' THEN ''
       ELSE ':c' || substr(dedupe_key, 20 + instr(substr(dedupe_key, 20), ':c') + 1,
                   length(dedupe_key) - 6 - (20 + instr(substr(dedupe_key, 20), ':c')))
       END
WHERE dedupe_key LIKE 'notice:entitlement:%:c%:ended';

-- `notice:entitlement:E:granted` → `entitlement:E:notice:granted`.
UPDATE delivery_jobs SET dedupe_key =
    'entitlement:' || substr(dedupe_key, 20, length(dedupe_key) - 19 - 8) || ':notice:granted'
WHERE dedupe_key LIKE 'notice:entitlement:%:granted';

-- `notice:invoice:I:payment_failed` → `invoice:I:notice:payment_failed`.
UPDATE delivery_jobs SET dedupe_key =
    'invoice:' || substr(dedupe_key, 16, length(dedupe_key) - 15 - 15) || ':notice:payment_failed'
WHERE dedupe_key LIKE 'notice:invoice:%:payment_failed';

-- `entitlement:E:cC:grant:action:A` → `entitlement:E:restore:action:A:cC`.
UPDATE delivery_jobs SET dedupe_key =
    'entitlement:' || substr(dedupe_key, 13, instr(substr(dedupe_key, 13), ':c') - 1)
    || ':restore:action:' || substr(dedupe_key, instr(dedupe_key, ':grant:action:') + 14)
    || ':c' || substr(dedupe_key, 13 + instr(substr(dedupe_key, 13), ':c') + 1,
                      instr(dedupe_key, ':grant:action:') - (13 + instr(substr(dedupe_key, 13), ':c') + 1))
WHERE dedupe_key LIKE 'entitlement:%:c%:grant:action:%';
