//! How a record maps to a `record` row and back.

use rusqlite::{Connection, Row, Statement};

use crate::model::{FlagSet, Timestamp};

use super::series::SeriesTable;
use super::{Record, RecordKind, StoreError, Stored};

/// The columns every read selects, in the order `decode` expects.
pub(super) const COLUMNS: &str =
    "seq, kind, series, ts, end_ts, flags, raw, measured, corrected, rate, min, max, count, note, \
     corrected_min, corrected_max, revision";

pub(super) const INSERT: &str = "INSERT INTO record
     (seq, kind, series, ts, end_ts, flags, raw, measured, corrected, rate, min, max, count, note,
      corrected_min, corrected_max, revision)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

pub(super) fn insert(
    stmt: &mut Statement<'_>,
    seq: i64,
    series: i64,
    r: &Record,
) -> Result<(), StoreError> {
    stmt.execute(rusqlite::params![
        seq,
        r.kind.code(),
        series,
        r.ts.millis(),
        r.end.map(Timestamp::millis),
        r.flags.bits(),
        r.raw,
        r.measured,
        r.corrected,
        r.rate,
        r.min,
        r.max,
        r.count,
        r.note.as_deref(),
        r.corrected_min,
        r.corrected_max,
        // the first version, by far the most rows, costs no byte
        (r.revision > 0).then_some(r.revision),
    ])?;
    Ok(())
}

/// Runs `stmt` and decodes every row it yields.
pub(super) fn read_all(
    stmt: &mut Statement<'_>,
    params: impl rusqlite::Params,
    conn: &Connection,
    series: &mut SeriesTable,
) -> Result<Vec<Stored>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row, conn, series)?);
    }
    Ok(out)
}

pub(super) fn decode(
    row: &Row<'_>,
    conn: &Connection,
    series: &mut SeriesTable,
) -> Result<Stored, StoreError> {
    let seq: i64 = row.get(0)?;
    let corrupt = |detail: String| StoreError::Corrupt { row: seq, detail };
    let kind_code: i64 = row.get(1)?;
    let kind = RecordKind::from_code(kind_code)
        .ok_or_else(|| corrupt(format!("unknown record kind code {kind_code}")))?;
    let series_id: i64 = row.get(2)?;
    let key = series.key(conn, series_id)?;
    let flags: i64 = row.get(5)?;
    let flags = u8::try_from(flags).map_err(|_| corrupt(format!("flag bits {flags}")))?;
    let count: Option<i64> = row.get(12)?;
    let count = count
        .map(u32::try_from)
        .transpose()
        .map_err(|_| corrupt(format!("count {count:?}")))?;
    let revision: Option<i64> = row.get(16)?;
    let revision = revision
        .map(u32::try_from)
        .transpose()
        .map_err(|_| corrupt(format!("revision {revision:?}")))?
        .unwrap_or(0);
    let record = Record {
        kind,
        ts: Timestamp::from_millis(row.get(3)?),
        end: row.get::<_, Option<i64>>(4)?.map(Timestamp::from_millis),
        stack: key.stack.clone(),
        device: key.device.clone(),
        channel: key.channel.clone(),
        quantity: key.quantity,
        unit: key.unit,
        flags: FlagSet::from_bits(flags),
        raw: row.get(6)?,
        measured: row.get(7)?,
        corrected: row.get(8)?,
        rate: row.get(9)?,
        min: row.get(10)?,
        max: row.get(11)?,
        count,
        note: row.get(13)?,
        corrected_min: row.get(14)?,
        corrected_max: row.get(15)?,
        revision,
    };
    let seq = u64::try_from(seq).map_err(|_| corrupt("negative seq".to_string()))?;
    Ok(Stored { seq, record })
}
