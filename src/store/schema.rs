//! Connection settings and the versioned schema. `PRAGMA user_version` holds how many
//! migrations have run; each migration runs once, in order, inside one transaction.

use rusqlite::{Connection, TransactionBehavior};

use super::{RecordKind, StoreError, StoreOptions};

/// Append-only: a store written by a build with migration N must open with every later build.
const MIGRATIONS: &[&str] = &[
    // 1: series interning keeps record rows to integers and floats; seq comes from
    // seq_counter, not max(seq), so it keeps rising after retention deleted every row.
    "CREATE TABLE series (
         id INTEGER PRIMARY KEY,
         stack TEXT NOT NULL,
         device TEXT NOT NULL,
         channel TEXT NOT NULL,
         quantity TEXT,
         unit TEXT
     );
     CREATE UNIQUE INDEX series_identity
         ON series (stack, device, channel, coalesce(quantity, ''), coalesce(unit, ''));
     CREATE TABLE record (
         seq INTEGER PRIMARY KEY,
         kind INTEGER NOT NULL,
         series INTEGER NOT NULL REFERENCES series (id),
         ts INTEGER NOT NULL,
         end_ts INTEGER,
         flags INTEGER NOT NULL,
         raw REAL,
         measured REAL,
         corrected REAL,
         rate REAL,
         min REAL,
         max REAL,
         count INTEGER,
         note TEXT
     );
     CREATE INDEX record_series_kind_ts ON record (series, kind, ts);
     CREATE TABLE seq_counter (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         last_seq INTEGER NOT NULL
     );
     INSERT INTO seq_counter (id, last_seq) VALUES (1, 0);
     CREATE TABLE sink_cursor (
         sink TEXT PRIMARY KEY,
         seq INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE dead_letter (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         ts INTEGER NOT NULL,
         source TEXT NOT NULL,
         reason TEXT NOT NULL,
         payload BLOB NOT NULL
     );
     CREATE INDEX dead_letter_ts ON dead_letter (ts);",
    // 2: HJ 212 minute/hour/day uploads carry the O2-corrected extremes (ZsMin, ZsMax) beside
    // the measured ones; rows written before stay NULL there, which reads as "no value".
    "ALTER TABLE record ADD COLUMN corrected_min REAL;
     ALTER TABLE record ADD COLUMN corrected_max REAL;",
    // 3: records arrive in time order, so an index led by time takes each commit's rows at
    // its right edge, a few pages per commit. The (series, kind, ts) index put every
    // series' newest row on a leaf of its own: a bureau with 6000 series wrote a 4 KiB page
    // per record and could not ingest 5000 uploads a second. Per-series reads of the
    // sparse kinds (hour, day, gap, exceedance, event: reports, exceedance look-back) keep
    // a series-led index of their own, small enough that its inserts do not matter; the
    // newest reading of each series, which the status page and a restart ask for, is
    // kept in `latest_reading` rather than searched for.
    "CREATE INDEX record_kind_ts_series ON record (kind, ts, series);
     CREATE INDEX record_series_period ON record (series, kind, ts) WHERE kind >= 2;
     DROP INDEX record_series_kind_ts;
     CREATE TABLE latest_reading (
         series INTEGER PRIMARY KEY,
         ts INTEGER NOT NULL,
         seq INTEGER NOT NULL
     );
     INSERT INTO latest_reading (series, ts, seq)
         SELECT series, ts, seq FROM (
             SELECT series, ts, seq,
                    row_number() OVER (PARTITION BY series ORDER BY ts DESC, seq DESC) AS nth
             FROM record WHERE kind = 0)
         WHERE nth = 1;",
    // 4: a minute, hour or day re-opened by a late reading is stored again as a revision
    // (1, 2, …) beside the rows it supersedes, which stay for audit; NULL is the first
    // version. Readers take the newest row of each (series, kind, ts).
    "ALTER TABLE record ADD COLUMN revision INTEGER;",
    // 5: evidence. `record_commit` chains every commit (its seq range and a hash over its
    // rows and the previous commit's hash, see `chain.rs`); `chain_checkpoint` holds the hash
    // where retention cut the chain, and (`unchained_to`) the seq up to which rows predate it.
    // `audit_entry` is the trail of parameter changes, each entry chained to the one
    // before; retention never deletes it.
    "CREATE TABLE record_commit (
         id INTEGER PRIMARY KEY,
         first_seq INTEGER NOT NULL,
         last_seq INTEGER NOT NULL,
         committed_at INTEGER NOT NULL,
         rows INTEGER NOT NULL,
         pruned_rows INTEGER NOT NULL DEFAULT 0,
         pruned_sum BLOB,
         hash BLOB NOT NULL
     );
     CREATE UNIQUE INDEX record_commit_first_seq ON record_commit (first_seq);
     CREATE TABLE chain_checkpoint (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         commit_id INTEGER NOT NULL,
         last_seq INTEGER NOT NULL,
         hash BLOB NOT NULL,
         unchained_to INTEGER NOT NULL
     );
     INSERT INTO chain_checkpoint (id, commit_id, last_seq, hash, unchained_to)
         SELECT 1, 0, last_seq, zeroblob(32), last_seq FROM seq_counter WHERE id = 1;
     CREATE TABLE audit_entry (
         id INTEGER PRIMARY KEY,
         ts INTEGER NOT NULL,
         source TEXT NOT NULL,
         how TEXT NOT NULL,
         item TEXT NOT NULL,
         old TEXT,
         new TEXT,
         file TEXT,
         checksum TEXT,
         hash BLOB NOT NULL
     );
     CREATE INDEX audit_entry_ts ON audit_entry (ts);",
    // 6: the status page's day chart reads one channel's minute records. Through the
    // time-led index that read walked every series' minutes of the day: 0.24 s with 2,000
    // series. This index groups minute records by minute and, inside a minute, by series, so
    // the read seeks its series once per minute and costs what it returns. Minutes are
    // written a minute at a time, so the rows of the minute being written lie on a few
    // pages, as in the time-led index: a bureau's listener commits at the same rate. A
    // store written before this builds it once at its first start (a scan of the table).
    // Readings get no such index: one more index on them costs a page per commit, about 130
    // bytes of flash per reading at plant rates (benches/flash_writes.rs), for a read (the
    // last hour of one channel) the time-led index serves in tens of milliseconds.
    "CREATE INDEX record_minute_slot ON record (ts / 60000, series, ts) WHERE kind = 1;",
    // 7: a restart shows each device's last values before it speaks again. A data logger
    // uploads minutes, hours or days, not readings, and none of the indexes finds the
    // newest minute of one series without walking every series' minutes back to it (a
    // logger silent for a day: a day of the whole bureau's minutes). This table keeps the
    // newest minute, hour or day record of each series, as `latest_reading` does for
    // readings: one row per series, moved on by each commit that holds a newer one. A
    // store written before this fills it once at its first start, from the period records of
    // the three days before its newest one, read through the time-led index; a revision
    // (same ts, later seq) wins. Reading them all would cost a year-old bureau store
    // hundreds of millions of rows at the start after the upgrade (7 s per 5 million here),
    // past systemd's start timeout on a gateway; a series silent for longer than three days
    // shows its values again from its next upload.
    "CREATE TABLE latest_period (
         series INTEGER PRIMARY KEY,
         ts INTEGER NOT NULL,
         seq INTEGER NOT NULL
     );
     INSERT INTO latest_period (series, ts, seq)
         SELECT series, ts, seq FROM (
             SELECT series, ts, seq,
                    row_number() OVER (PARTITION BY series ORDER BY ts DESC, seq DESC) AS nth
             FROM record
             WHERE kind IN (1, 2, 3)
               AND ts >= max(coalesce((SELECT max(ts) FROM record WHERE kind = 1), 0),
                             coalesce((SELECT max(ts) FROM record WHERE kind = 2), 0),
                             coalesce((SELECT max(ts) FROM record WHERE kind = 3), 0))
                         - 3 * 86400000)
         WHERE nth = 1;",
    // 8: `/metrics` reported the rows held with count(*), a walk of a whole index on every
    // scrape: 0.3 s warm and 1.1 s cold on 17.5 million rows, minutes on a year-old bureau
    // store. The rows are now counted as they come and go (`row_count.rs`). A store written
    // before counts what it held in steps after its first start: `uncounted_to` is the seq up
    // to which rows are not in `rows` yet.
    "ALTER TABLE seq_counter ADD COLUMN rows INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE seq_counter ADD COLUMN uncounted_to INTEGER NOT NULL DEFAULT 0;
     UPDATE seq_counter SET uncounted_to = last_seq WHERE id = 1;",
];

/// The slotted per-series index of a bulk kind (migration 6): its name and slot width. The
/// width is part of the index's expression, written out in the migration, and a query must
/// repeat that expression word for word for SQLite to use the index.
pub(super) fn slot_index(kind: RecordKind) -> Option<SlotIndex> {
    match kind {
        RecordKind::Minute => Some(SlotIndex {
            name: "record_minute_slot",
            slot_ms: 60_000,
        }),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SlotIndex {
    pub name: &'static str,
    pub slot_ms: i64,
}

/// The condition of the partial `record_series_period` index, word for word: a query
/// must contain this very term for SQLite to use that index.
pub(super) const SERIES_INDEX_CONDITION: &str = "kind >= 2";

/// The `user_version` of a fully migrated store.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Enough for every statement the store prepares, so none is ever re-parsed.
const STATEMENT_CACHE_CAPACITY: usize = 32;

/// Caps the WAL file left behind after a burst; SQLite truncates it to this at checkpoint.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// WAL pages between automatic checkpoints (SQLite's default is 1000). Many series written
/// together dirty a page of the series index per few records, so a batch can exceed 1000
/// pages and the default checkpointed (and fsynced) after every commit; a checkpoint writes
/// each page once however many commits changed it, so spacing them writes the hot index
/// pages far less often. 8192 pages of 4 KiB are 32 MiB, within the journal size limit.
pub(super) const WAL_AUTOCHECKPOINT_PAGES: i64 = 8192;

pub(super) fn configure(conn: &Connection, options: &StoreOptions) -> Result<(), StoreError> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Still durable in rollback-journal mode, but readers then block the writer.
        tracing::warn!(journal_mode = %mode, "store could not switch to WAL mode");
    }
    // In WAL mode NORMAL survives any process crash; FULL also survives power loss of the
    // last commits, at the price of an fsync per transaction.
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -i64::from(options.cache_size_kib))?;
    auto_checkpoint(conn)?;
    conn.query_row(
        &format!("PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}"),
        [],
        |_| Ok(()),
    )?;
    Ok(())
}

/// Lets the connection checkpoint by itself after commits that leave the WAL this long.
pub(super) fn auto_checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row(
        &format!("PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}"),
        [],
        |_| Ok(()),
    )?;
    Ok(())
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Runs the migrations up to `version`; tests use it to build a store as an older build
/// left it.
pub(super) fn migrate_to(conn: &mut Connection, version: i64) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found >= version {
        return Ok(());
    }
    let pending = usize::try_from(version - found.max(0)).unwrap_or(0);
    for migration in MIGRATIONS.iter().skip(found.max(0) as usize).take(pending) {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()?;
    Ok(())
}
