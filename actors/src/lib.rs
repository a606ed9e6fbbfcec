//! Actix actors for tap-pool.
