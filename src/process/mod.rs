//! HJ 75-2017 processing: normalisation, quality flags, aggregation and exceedances.

pub mod aggregate;
mod chain;
pub mod exceedance;
pub mod normalise;
pub mod quality;

pub use chain::*;
