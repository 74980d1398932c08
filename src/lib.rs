//! cemsd: continuous emissions monitoring daemon.
//!
//! Collectors read analysers and emit [`model::Sample`]s; normalisation, quality and
//! aggregation turn them into readings a bureau accepts; the store keeps everything durable
//! until every sink has taken it.

pub mod aggregate;
pub mod capture;
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod diagnostic;
pub mod exceedance;
pub mod fgd;
pub mod hj212;
pub mod live;
pub mod model;
pub mod normalise;
pub mod ops;
pub mod pipeline;
pub mod process;
pub mod profile;
pub mod quality;
pub mod replay;
pub mod report;
pub mod secret;
pub mod sim;
pub mod sink;
pub mod stack;
pub mod store;
pub mod totals;
