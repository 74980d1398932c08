//! Reports over the store: the tables of HJ 75-2017's report appendix for a day, a month and a
//! year in text, CSV, JSON, XLSX and HTML; the detailed day (gaps, exceedances); emitted mass,
//! FGD removal and transmission rates; the day's parameter changes.

mod changes;
mod daily;
pub mod fgd;
pub mod holdings;
pub mod lang;
pub mod notes;
mod page;
pub mod period;
pub mod rates;
mod render;
pub mod rounding;
pub mod sheet;
pub mod table;
pub mod totals;
mod xlsx;

pub use changes::render_changes;
pub use daily::*;
pub use lang::Lang;
pub use page::{html_page, PageQuery};
pub use period::ReportPeriod;
pub use render::{render_csv, render_html, render_text, Format};
pub use table::{build_table, TableReport};
pub use xlsx::render_xlsx;
