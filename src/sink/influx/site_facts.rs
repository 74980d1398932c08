//! What a line-protocol point takes from the site config beside its record: the site tag,
//! each stack's emission limits (so a chart or an alert rule compares `corrected` with
//! `limit` on the same series) and the unit of each device channel's raw values.

use std::collections::BTreeMap;

use crate::config::SiteConfig;
use crate::model::{Quantity, Unit};

#[derive(Debug, Clone, Default)]
pub struct SiteFacts {
    pub site: String,
    /// Emission limit (mg/m3, O2-corrected) by (stack, pollutant).
    limits: BTreeMap<(String, Quantity), f64>,
    /// Wire unit by (device, channel), as `SiteConfig::wire_units`.
    wire_units: BTreeMap<(String, String), Unit>,
}

impl SiteFacts {
    pub fn of(config: &SiteConfig) -> SiteFacts {
        SiteFacts {
            site: config.site.id.clone(),
            limits: config.limits(),
            wire_units: config.wire_units.clone(),
        }
    }

    /// A site known only by its id: no limits, and raw units only where the record's own
    /// unit is theirs too.
    pub fn named(site: &str) -> SiteFacts {
        SiteFacts {
            site: site.to_string(),
            ..SiteFacts::default()
        }
    }

    pub fn limit(&self, stack: &str, quantity: Quantity) -> Option<f64> {
        self.limits.get(&(stack.to_string(), quantity)).copied()
    }

    /// The unit of a channel's raw values (its wire unit: ppm for a gas analyser that
    /// reports ppm), which is not the record's unit (mg/m3) for converted gases.
    pub fn raw_unit(
        &self,
        device: &str,
        channel: &str,
        quantity: Option<Quantity>,
        record_unit: Option<Unit>,
    ) -> Option<Unit> {
        crate::config::raw_unit(&self.wire_units, device, channel, quantity, record_unit)
    }
}
