//! Reports over the store: the tables of HJ 75-2017's report appendix for a day, a month and a
//! year in text, CSV, JSON, XLSX and HTML; the detailed day (gaps, exceedances); emitted mass,
//! FGD removal and transmission rates.

mod daily;
pub mod fgd;
pub mod holdings;
pub mod lang;
pub mod period;
pub mod rates;
mod render;
pub mod sheet;
pub mod table;
pub mod totals;
mod xlsx;

pub use daily::*;
pub use lang::Lang;
pub use period::ReportPeriod;
pub use render::{render_csv, render_html, render_text, Format};
pub use table::{build_table, TableReport};
pub use xlsx::render_xlsx;

/// The printable HTML page of a period for the daemon's `/report`: `day`, `month` or `year`
/// picks the period (as on the command line), `stack` one stack, `lang` the language.
pub fn html_page(
    store: &crate::store::Store,
    config: &crate::config::SiteConfig,
    query: &PageQuery,
    now: crate::model::Timestamp,
) -> Result<Result<String, String>, crate::store::StoreError> {
    let period = match (&query.day, &query.month, &query.year) {
        (Some(d), None, None) => ReportPeriod::day(d),
        (None, Some(m), None) => ReportPeriod::month(m),
        (None, None, Some(y)) => ReportPeriod::year(y),
        _ => Err("give one of day=YYYY-MM-DD, month=YYYY-MM, year=YYYY".to_string()),
    };
    let period = match period {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(stack) = &query.stack {
        if !config.stacks.iter().any(|s| &s.id == stack) {
            return Ok(Err(format!("no stack {stack:?} in this site")));
        }
    }
    let built = build_table(store, config, period, query.stack.as_deref(), now)?;
    Ok(Ok(render_html(&built, query.lang.unwrap_or_default())))
}

/// Parameters of `/report`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageQuery {
    pub day: Option<String>,
    pub month: Option<String>,
    pub year: Option<String>,
    pub stack: Option<String>,
    pub lang: Option<Lang>,
}
