//! What a line-protocol point takes from the site config beside its record: the site tag,
//! each stack's emission limits (so a chart or an alert rule compares `corrected` with
//! `limit` on the same series) and the unit of each device channel's raw values. Kept in maps
//! looked up by `&str`, so encoding a record allocates nothing for them.

use std::collections::BTreeMap;

use crate::config::SiteConfig;
use crate::model::{Quantity, Unit};

#[derive(Debug, Clone, Default)]
pub struct SiteFacts {
    pub site: String,
    /// Emission limits (mg/m3, O2-corrected) by stack, then pollutant.
    limits: BTreeMap<String, BTreeMap<Quantity, f64>>,
    /// Wire unit by device, then channel, as `SiteConfig::wire_units`.
    wire_units: BTreeMap<String, BTreeMap<String, Unit>>,
}

impl SiteFacts {
    pub fn of(config: &SiteConfig) -> SiteFacts {
        let mut facts = SiteFacts::named(&config.site.id);
        for ((stack, quantity), limit) in config.limits() {
            facts
                .limits
                .entry(stack)
                .or_default()
                .insert(quantity, limit);
        }
        for ((device, channel), unit) in &config.wire_units {
            facts
                .wire_units
                .entry(device.clone())
                .or_default()
                .insert(channel.clone(), *unit);
        }
        facts
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
        self.limits.get(stack)?.get(&quantity).copied()
    }

    /// The unit of a channel's raw values (its wire unit: ppb for a gas analyser that
    /// reports ppb), which is not the record's unit (mg/m3) for converted gases.
    pub fn raw_unit(
        &self,
        device: &str,
        channel: &str,
        quantity: Option<Quantity>,
        record_unit: Option<Unit>,
    ) -> Option<Unit> {
        let wire = self
            .wire_units
            .get(device)
            .and_then(|channels| channels.get(channel))
            .copied();
        crate::config::raw_unit(wire, quantity, record_unit)
    }
}
