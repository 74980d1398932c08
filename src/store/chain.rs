//! The tamper chain over committed records. Each commit adds one small `record_commit` row:
//! its seq range and a SHA-256 over the previous commit's hash and the sum of its rows'
//! hashes. A row edited, inserted or deleted behind the daemon's back no longer adds up.
//!
//! Rows are summed (256-bit wrapping addition of each row's SHA-256) rather than hashed in
//! one stream so that retention can take rows out of a commit and keep it verifiable: it adds
//! the hashes of what it deletes to the commit's `pruned_sum`. Once every row of the oldest
//! commits is gone, their rows go too and `chain_checkpoint` keeps the hash at the cut.
//!
//! Without a secret, anyone who knows this scheme can rebuild the chain after an edit; what
//! it shows is an edit made with a plain SQL tool. The head hash is what an inspector notes
//! down (`cemsd verify` prints it) to pin the history up to that commit.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, Transaction};

use super::StoreError;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The identity every row is hashed with: the series' names, not its interned id, so an
/// edit of the `series` table breaks the chain as well.
pub(super) const CANONICAL_ROW: &str =
    "SELECT r.seq, r.kind, s.stack, s.device, s.channel, s.quantity, s.unit, r.ts, r.end_ts,
            r.flags, r.raw, r.measured, r.corrected, r.rate, r.min, r.max, r.count, r.note,
            r.corrected_min, r.corrected_max, r.revision
     FROM record r LEFT JOIN series s ON s.id = r.series";

/// Index of `ts` in [`CANONICAL_ROW`], for the periods a broken commit affects.
pub(super) const CANONICAL_TS_COLUMN: usize = 7;

/// Tags the encoding, so a later scheme can never produce the same bytes.
const COMMIT_DOMAIN: &[u8] = b"cemsd record commit v1";

/// Appends one SQLite value to `out` with a type tag and, for text and blobs, a length, so
/// no two different rows encode to the same bytes.
pub(crate) fn encode_value(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_be_bytes());
        }
        ValueRef::Real(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        ValueRef::Text(bytes) => {
            out.push(3);
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        ValueRef::Blob(bytes) => {
            out.push(4);
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

/// SHA-256 of the canonical encoding of every column of `row`.
pub(crate) fn row_digest(row: &Row<'_>, buffer: &mut Vec<u8>) -> Result<Digest, StoreError> {
    buffer.clear();
    for column in 0..row.as_ref().column_count() {
        encode_value(row.get_ref(column)?, buffer);
    }
    Ok(sha256(&[buffer]))
}

pub(crate) fn sha256(parts: &[&[u8]]) -> Digest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// `sum += add` as 256-bit big-endian integers, wrapping.
pub(super) fn add_digest(sum: &mut Digest, add: &Digest) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let total = u16::from(sum[i]) + u16::from(add[i]) + carry;
        sum[i] = (total & 0xff) as u8;
        carry = total >> 8;
    }
}

/// SHA-256 of `bytes` in hex, e.g. the checksum of a config file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(&[bytes]))
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The facts one commit's hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CommitFacts {
    pub id: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Rows committed, including those retention has since taken.
    pub rows: i64,
    /// Sum of the rows' digests, including those retention has since taken.
    pub rows_sum: Digest,
}

pub(super) fn commit_hash(previous: &Digest, facts: &CommitFacts) -> Digest {
    sha256(&[
        COMMIT_DOMAIN,
        previous,
        &facts.id.to_be_bytes(),
        &facts.first_seq.to_be_bytes(),
        &facts.last_seq.to_be_bytes(),
        &facts.rows.to_be_bytes(),
        &facts.rows_sum,
    ])
}

/// The hash the next commit links to: the newest commit's, or the checkpoint's.
pub(super) fn head(tx: &Connection) -> Result<(i64, Digest), StoreError> {
    let newest: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT id, hash FROM record_commit ORDER BY id DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (id, hash) = match newest {
        Some(found) => found,
        None => tx
            .prepare_cached("SELECT commit_id, hash FROM chain_checkpoint WHERE id = 1")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?,
    };
    Ok((id, to_digest(&hash)))
}

/// Adds the commit of the rows `first_seq..=last_seq`, just inserted in `tx`. Reads them
/// back through [`CANONICAL_ROW`] so the hash covers exactly what a later verify reads.
pub(super) fn add_commit(
    tx: &Transaction<'_>,
    first_seq: i64,
    last_seq: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let (previous_id, previous) = head(tx)?;
    let mut rows_sum = [0u8; 32];
    let mut rows = 0i64;
    let mut buffer = Vec::with_capacity(256);
    {
        let mut stmt =
            tx.prepare_cached(&format!("{CANONICAL_ROW} WHERE r.seq BETWEEN ?1 AND ?2"))?;
        let mut found = stmt.query([first_seq, last_seq])?;
        while let Some(row) = found.next()? {
            add_digest(&mut rows_sum, &row_digest(row, &mut buffer)?);
            rows += 1;
        }
    }
    let facts = CommitFacts {
        id: previous_id + 1,
        first_seq,
        last_seq,
        rows,
        rows_sum,
    };
    let hash = commit_hash(&previous, &facts);
    tx.prepare_cached(
        "INSERT INTO record_commit (id, first_seq, last_seq, committed_at, rows, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(rusqlite::params![
        facts.id,
        first_seq,
        last_seq,
        now_ms,
        rows,
        &hash[..]
    ])?;
    Ok(())
}

/// Deletes the records whose seqs are selected by `select_seqs` (a query yielding `seq`),
/// adding each one's digest to its commit's `pruned_sum` first. Returns how many went.
pub(super) fn delete_keeping_chain(
    tx: &Transaction<'_>,
    select_seqs: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    let mut pruned: Vec<(i64, Digest)> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "{CANONICAL_ROW} WHERE r.seq IN ({select_seqs}) ORDER BY r.seq"
        ))?;
        let mut rows = stmt.query(params)?;
        let mut buffer = Vec::with_capacity(256);
        while let Some(row) = rows.next()? {
            pruned.push((row.get(0)?, row_digest(row, &mut buffer)?));
        }
    }
    let mut find_commit = tx.prepare_cached(
        "SELECT id, last_seq, pruned_rows, pruned_sum FROM record_commit
         WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE record_commit SET pruned_rows = ?2, pruned_sum = ?3 WHERE id = ?1",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM record WHERE seq = ?1")?;
    // Rows come in seq order, so each commit is read and written once per step.
    let mut open: Option<(i64, i64, i64, Digest)> = None;
    for (seq, digest) in &pruned {
        if open.is_none_or(|(_, last, _, _)| *seq > last) {
            if let Some((id, _, count, sum)) = open.take() {
                update.execute(rusqlite::params![id, count, &sum[..]])?;
            }
            open = find_commit
                .query_row([seq], |row| {
                    let sum: Option<Vec<u8>> = row.get(3)?;
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        sum.as_deref().map_or([0u8; 32], to_digest),
                    ))
                })
                .optional()?
                .filter(|(_, last, _, _)| seq <= last);
        }
        if let Some((_, _, count, sum)) = open.as_mut() {
            *count += 1;
            add_digest(sum, digest);
        }
        // A row no commit covers predates the chain (a store from before it).
        delete.execute([seq])?;
    }
    if let Some((id, _, count, sum)) = open {
        update.execute(rusqlite::params![id, count, &sum[..]])?;
    }
    super::row_count::take_off(tx, pruned.iter().map(|(seq, _)| *seq))?;
    Ok(pruned.len())
}

/// Moves the checkpoint past the oldest commits none of whose rows are left, and drops their
/// rows: the chain then starts at the checkpoint's hash.
pub(super) fn advance_checkpoint(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    let mut oldest = tx.prepare_cached(
        "SELECT id, last_seq, hash, EXISTS (
             SELECT 1 FROM record WHERE seq BETWEEN record_commit.first_seq AND record_commit.last_seq)
         FROM record_commit ORDER BY id LIMIT 1",
    )?;
    let mut drop_commit = tx.prepare_cached("DELETE FROM record_commit WHERE id = ?1")?;
    let mut checkpoint = tx.prepare_cached(
        "UPDATE chain_checkpoint SET commit_id = ?1, last_seq = ?2, hash = ?3 WHERE id = 1",
    )?;
    let mut dropped = 0;
    loop {
        let found: Option<(i64, i64, Vec<u8>, bool)> = oldest
            .query_row([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?;
        let Some((id, last_seq, hash, rows_left)) = found else {
            return Ok(dropped);
        };
        if rows_left {
            return Ok(dropped);
        }
        checkpoint.execute(rusqlite::params![id, last_seq, hash])?;
        drop_commit.execute([id])?;
        dropped += 1;
    }
}

pub(super) fn to_digest(bytes: &[u8]) -> Digest {
    let mut out = [0u8; 32];
    let n = bytes.len().min(32);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_add_as_256_bit_numbers_with_carry() {
        let mut sum = [0u8; 32];
        sum[31] = 0xff;
        sum[30] = 0xff;
        let mut one = [0u8; 32];
        one[31] = 1;
        add_digest(&mut sum, &one);
        let mut expected = [0u8; 32];
        expected[29] = 1;
        assert_eq!(sum, expected);
        // wraps at 2^256
        let mut max = [0xffu8; 32];
        add_digest(&mut max, &one);
        assert_eq!(max, [0u8; 32]);
    }

    #[test]
    fn values_of_different_types_or_lengths_never_encode_alike() {
        let encode = |values: &[ValueRef<'_>]| {
            let mut out = Vec::new();
            for v in values {
                encode_value(*v, &mut out);
            }
            out
        };
        assert_ne!(
            encode(&[ValueRef::Text(b"ab"), ValueRef::Text(b"c")]),
            encode(&[ValueRef::Text(b"a"), ValueRef::Text(b"bc")])
        );
        assert_ne!(
            encode(&[ValueRef::Integer(1)]),
            encode(&[ValueRef::Real(f64::from_bits(1))])
        );
        assert_ne!(encode(&[ValueRef::Null]), encode(&[ValueRef::Integer(0)]));
    }

    #[test]
    fn sha256_matches_the_fips_180_2_example() {
        // FIPS 180-2 appendix B.1: SHA-256("abc")
        assert_eq!(
            hex(&sha256(&[b"a", b"bc"])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
