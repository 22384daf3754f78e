-- Several processes on one database (issue 16): a running job is leased to the process that
-- claimed it until `lease_until`; a job whose holder died is claimed again after that, and
-- `fencing` (raised at every claim) lets only the latest holder record the job's outcome.
ALTER TABLE delivery_jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE delivery_jobs ADD COLUMN lease_until TEXT;
ALTER TABLE delivery_jobs ADD COLUMN fencing INTEGER NOT NULL DEFAULT 0;
CREATE INDEX delivery_jobs_lease ON delivery_jobs (status, lease_until);

