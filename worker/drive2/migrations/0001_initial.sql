-- Drive2 catalog, migration 0001: users, files, embeddings.
--
-- This file is the schema definition for BOTH backends (SQLite and
-- PostgreSQL). Keep it to SQL that both accept: TEXT, INTEGER, BIGINT,
-- DOUBLE PRECISION, CHECK, REFERENCES, CREATE INDEX IF NOT EXISTS.
-- One per-dialect substitution is applied before it runs (catalog.c):
--   {{BLOB}}  ->  BLOB (SQLite) | BYTEA (PostgreSQL)
-- Timestamps are TEXT in one fixed-width UTC form, 2026-11-28T17:00:00.123456Z,
-- so they compare correctly as strings in both databases and read the same
-- in every client. Migrations are embedded into the binaries at build time
-- (migrations/embed.cmake) and applied in order by drive2_catalog_new(),
-- which records each in schema_migrations.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    quota_bytes BIGINT NOT NULL DEFAULT 10737418240,  -- 10 GiB
    line_user_id TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE files (
    id TEXT PRIMARY KEY,                    -- uuid4 text
    owner TEXT NOT NULL REFERENCES users (id),
    original_name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0), -- bytes
    checksum TEXT NOT NULL,                 -- sha256, lower-case hex
    storage_key TEXT NOT NULL,
    processing_status TEXT NOT NULL DEFAULT 'pending'
        CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed')),
    task_id TEXT,                           -- the task of the latest run (progress)
    error TEXT,                             -- why it failed (or the last retried error)
    ai_filename TEXT,
    ai_summary TEXT,
    ai_tags TEXT,                           -- JSON array of strings
    thumbnail_path TEXT,
    uploaded_at TEXT NOT NULL,
    processed_at TEXT,                      -- when it became completed or failed
    processing_started_at TEXT,             -- start of the current run (stuck detection)
    updated_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0     -- runs started since upload or reset
);

CREATE INDEX IF NOT EXISTS files_owner ON files (owner);
CREATE INDEX IF NOT EXISTS files_status_started ON files (processing_status, processing_started_at);

-- The embedded vector store (when qdrant_url is empty): one vector per file,
-- float32 little-endian. No foreign key: a vector store is addressed by file
-- id only, like Qdrant, and drive2_catalog_delete_file removes both.
CREATE TABLE embeddings (
    file_id TEXT PRIMARY KEY,
    dim INTEGER NOT NULL CHECK (dim > 0),
    vector {{BLOB}} NOT NULL,
    updated_at TEXT NOT NULL
);
