-- Drive2 catalog, migration 0002: quota alerts (issue 7, notifications).
-- Portable SQL for SQLite and PostgreSQL (see 0001_initial.sql for the rules).
--
-- One row per (user, threshold) while the user stays above that share of
-- their quota: the alert for a crossing is sent once, by whoever inserts the
-- row (drive2_catalog_quota_alert_claim); the row goes when usage falls back
-- below the threshold (drive2_catalog_quota_alert_release), so the next
-- crossing alerts again.

CREATE TABLE quota_alerts (
    user_id TEXT NOT NULL,
    threshold_pct INTEGER NOT NULL CHECK (threshold_pct > 0 AND threshold_pct <= 1000),
    alerted_at TEXT NOT NULL,
    PRIMARY KEY (user_id, threshold_pct)
);

-- The daily summary counts uploads since a time.
CREATE INDEX IF NOT EXISTS files_uploaded_at ON files (uploaded_at);
