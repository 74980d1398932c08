//! The open-files limit. Every logger connected to the HJ 212 listener holds a socket, and
//! the usual soft limit of 1024 locks a bureau out at about a thousand loggers while the
//! hard limit allows far more. A process may raise its own soft limit up to the hard one
//! without any privilege, so the daemon does that at start.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft limit of open files to the hard limit and returns the limit now in
/// force; `None` if it cannot be read.
pub fn raise_to_hard_limit() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!("cannot read the open-files limit: {e}");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::debug!(from = soft, to = hard, "raised the open-files limit");
            Some(hard)
        }
        Err(e) => {
            tracing::warn!(soft, hard, "cannot raise the open-files limit: {e}");
            Some(soft)
        }
    }
}
