//! The broker password comes from the crate's one secret loader.

pub use crate::config::mqtt::credentials::password;
