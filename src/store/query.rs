//! Filtered reads for reports and status views.

use rusqlite::types::Value;

use crate::model::{Quantity, Timestamp};

use super::{limit_to_sql, row, RecordKind, Store, StoreError, Stored};

/// Which records to read. Every filter left `None` matches everything; `from` is
/// inclusive and `to` exclusive, so consecutive windows never overlap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub kind: Option<RecordKind>,
    pub stack: Option<String>,
    pub device: Option<String>,
    pub channel: Option<String>,
    pub quantity: Option<Quantity>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: Option<usize>,
}

impl Query {
    fn filters_series(&self) -> bool {
        self.stack.is_some()
            || self.device.is_some()
            || self.channel.is_some()
            || self.quantity.is_some()
    }
}

impl Store {
    /// Matching records ordered by `ts`, then seq.
    pub fn query(&self, q: &Query) -> Result<Vec<Stored>, StoreError> {
        let mut series = self.series.borrow_mut();
        let mut sql = format!("SELECT {} FROM record WHERE 1", row::COLUMNS);
        let mut params: Vec<Value> = Vec::new();
        if q.filters_series() {
            series.refresh(&self.conn)?;
            let ids = series.ids_where(|k| {
                q.stack.as_deref().is_none_or(|s| *k.stack == *s)
                    && q.device.as_deref().is_none_or(|d| *k.device == *d)
                    && q.channel.as_deref().is_none_or(|c| *k.channel == *c)
                    && q.quantity.is_none_or(|qty| k.quantity == Some(qty))
            });
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let placeholders = vec!["?"; ids.len()].join(", ");
            sql.push_str(&format!(" AND series IN ({placeholders})"));
            params.extend(ids.into_iter().map(Value::Integer));
        }
        if let Some(kind) = q.kind {
            sql.push_str(" AND kind = ?");
            params.push(Value::Integer(kind.code()));
        }
        if let Some(from) = q.from {
            sql.push_str(" AND ts >= ?");
            params.push(Value::Integer(from.millis()));
        }
        if let Some(to) = q.to {
            sql.push_str(" AND ts < ?");
            params.push(Value::Integer(to.millis()));
        }
        sql.push_str(" ORDER BY ts, seq LIMIT ?");
        params.push(Value::Integer(limit_to_sql(q.limit)));
        // Not cached: the text varies with the filters and the number of series.
        let mut stmt = self.conn.prepare(&sql)?;
        row::read_all(
            &mut stmt,
            rusqlite::params_from_iter(params),
            &self.conn,
            &mut series,
        )
    }
}
