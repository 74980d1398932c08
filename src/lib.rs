//! cemsd: continuous emissions monitoring daemon.
//!
//! Collectors read analysers and emit [`model::Sample`]s; normalisation, quality and
//! aggregation turn them into readings a bureau accepts; the store keeps everything durable
//! until every sink has taken it.

pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod diagnostic;
pub mod live;
pub mod model;
pub mod ops;
pub mod pipeline;
pub mod profile;
pub mod secret;
pub mod sim;
pub mod store;
