//! The audit trail of parameter changes: what the site config and device profiles say, as
//! dotted items (`flatten.rs`), compared with what the store last recorded (`changes.rs`),
//! recorded when the daemon starts and when a reload takes effect (`record.rs`).

pub mod changes;
pub mod flatten;
pub mod record;

pub use changes::{changes, Snapshot};
pub use record::record_changes;
