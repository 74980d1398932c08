//! cemsd: continuous emissions monitoring daemon.
//!
//! Collectors read analysers and emit [`model::Sample`]s; normalisation, quality and
//! aggregation turn them into readings a bureau accepts; the store keeps everything durable
//! until every sink has taken it.

pub mod diagnostic;
pub mod hj212;
pub mod model;
pub mod profile;
