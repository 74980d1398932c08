//! `cemsd verify`: checks the store's tamper chain and audit trail and says which commit
//! broke first and which periods it covers. Exits [`EXIT_TAMPERED`] when anything does not
//! add up, so a cron job or an inspector's script can tell.

use std::path::Path;

use crate::app::cli::{open_store, Failure};
use crate::store::{hex, Store, StoreOptions, Verification};

/// The store was changed behind cemsd's back: a row edited, inserted or deleted.
pub const EXIT_TAMPERED: u8 = 4;

/// Verifies the store of `config_path`, or the store file `store_path`.
pub fn verify(config_path: Option<&Path>, store_path: Option<&Path>) -> Result<(), Failure> {
    let store = match (config_path, store_path) {
        (_, Some(path)) => {
            if !path.is_file() {
                return Err(Failure::usage(format!(
                    "{}: no such store file",
                    path.display()
                )));
            }
            Store::open(path, StoreOptions::default()).map_err(|e| {
                Failure::store(format!("{}: {e}", path.display()), e.needs_operator())
            })?
        }
        (Some(config), None) => open_store(config)?.1,
        (None, None) => return Err(Failure::usage("give --config or --store")),
    };
    let verification = store
        .verify()
        .map_err(|e| Failure::store(format!("cannot verify the store: {e}"), e.needs_operator()))?;
    print!("{}", describe(&verification));
    if verification.is_intact() {
        Ok(())
    } else {
        let first = verification.broken.first().map_or_else(
            || "the audit trail".to_string(),
            |b| format!("commit {}", b.commit),
        );
        Err(Failure {
            message: format!("the store was changed after commit: first broken at {first}"),
            exit_code: EXIT_TAMPERED,
        })
    }
}

/// What `verify` prints: the counts, the head hash to note down, then each broken commit
/// with the periods it covers.
pub fn describe(v: &Verification) -> String {
    let mut out = format!(
        "commits checked: {}\nrows checked: {}\naudit entries checked: {}\nhead: {}\n",
        v.commits,
        v.rows,
        v.audit_entries,
        hex(&v.head)
    );
    if v.unchained_rows > 0 {
        out.push_str(&format!(
            "rows written before this store had a chain (not covered): {}\n",
            v.unchained_rows
        ));
    }
    for b in &v.broken {
        out.push_str(&format!(
            "BROKEN commit {} (seq {}..={}",
            b.commit, b.first_seq, b.last_seq
        ));
        if let Some(at) = b.committed_at {
            out.push_str(&format!(", committed {at}"));
        }
        out.push_str(&format!("): {}", b.reason));
        if let Some((from, to)) = b.period {
            out.push_str(&format!("; periods affected {from} .. {to}"));
        }
        out.push('\n');
    }
    if let Some((id, ts)) = v.audit_broken {
        out.push_str(&format!(
            "BROKEN audit trail at entry {id} (time {})\n",
            crate::model::Timestamp::from_millis(ts)
        ));
    }
    if v.is_intact() {
        out.push_str("intact: every commit adds up\n");
    }
    out
}
