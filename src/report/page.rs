//! The daemon's `/report`: the printable HTML of a day, month or year.

use serde::Deserialize;

use crate::config::SiteConfig;
use crate::model::Timestamp;
use crate::report::{build_table, render_html, Lang, ReportPeriod};
use crate::store::{Store, StoreError};

/// Parameters of `/report`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub day: Option<String>,
    pub month: Option<String>,
    pub year: Option<String>,
    pub stack: Option<String>,
    pub lang: Option<Lang>,
}

/// The page of the period `day`, `month` or `year` names (written as on the command line),
/// for `stack` or all stacks, in `lang` (Chinese by default). The inner error is the caller's
/// mistake, to answer with 400.
pub fn html_page(
    store: &Store,
    config: &SiteConfig,
    query: &PageQuery,
    now: Timestamp,
) -> Result<Result<String, String>, StoreError> {
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
