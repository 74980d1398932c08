//! Reports over the store: the daily table, emitted mass and FGD removal efficiency.

mod daily;
pub mod fgd;
pub mod totals;

pub use daily::*;
