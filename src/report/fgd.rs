//! Flue-gas desulphurisation (FGD) performance from a stack pair measured before (inlet) and
//! after (outlet) the absorber: SO2 removed and removal efficiency,
//! η = (inlet mass − outlet mass) / inlet mass, from the hourly SO2 masses of HJ 75-2017
//! (rate × 1 h, measured dry concentration × standard dry flow). Masses rather than
//! concentrations, because the absorber changes both flow and moisture.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::model::time::{Period, UtcOffset};
use crate::model::{Quantity, Timestamp};
use crate::process::aggregate::Aggregate;
use crate::report::totals::{calendar_bounds, CalendarPeriod};

/// SO2 removal over one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct FgdHour {
    pub inlet: Arc<str>,
    pub outlet: Arc<str>,
    pub start: Timestamp,
    pub inlet_kg: Option<f64>,
    pub outlet_kg: Option<f64>,
    pub removed_kg: Option<f64>,
    /// Fraction (0.985 = 98.5 %).
    pub efficiency: Option<f64>,
    /// Both hours valid with a mass, and SO2 entered the absorber.
    pub valid: bool,
}

/// Removal for one hour from the inlet's and the outlet's SO2 hour aggregates.
pub fn fgd_hour(inlet: &Aggregate, outlet: &Aggregate) -> FgdHour {
    let inlet_kg = inlet.mass_kg.filter(|_| inlet.valid);
    let outlet_kg = outlet.mass_kg.filter(|_| outlet.valid);
    let removed_kg = inlet_kg.zip(outlet_kg).map(|(i, o)| i - o);
    let efficiency = removed_kg
        .zip(inlet_kg)
        .filter(|(_, i)| *i > 0.0)
        .map(|(r, i)| r / i);
    FgdHour {
        inlet: Arc::clone(&inlet.stack),
        outlet: Arc::clone(&outlet.stack),
        start: inlet.start,
        inlet_kg,
        outlet_kg,
        removed_kg,
        efficiency,
        valid: efficiency.is_some(),
    }
}

/// Hours kept waiting for the other stack's aggregate of the same hour.
const PENDING_HOURS: usize = 48;

/// Pairs the SO2 hour aggregates of an inlet and an outlet stack as they are produced.
#[derive(Debug, Clone)]
pub struct FgdPairer {
    inlet: Arc<str>,
    outlet: Arc<str>,
    pending_inlet: VecDeque<Aggregate>,
    pending_outlet: VecDeque<Aggregate>,
}

impl FgdPairer {
    pub fn new(inlet: Arc<str>, outlet: Arc<str>) -> FgdPairer {
        FgdPairer {
            inlet,
            outlet,
            pending_inlet: VecDeque::with_capacity(PENDING_HOURS),
            pending_outlet: VecDeque::with_capacity(PENDING_HOURS),
        }
    }

    /// Feeds any aggregate; SO2 hours of the two stacks are paired by start, the pair goes to
    /// `out`. An hour whose partner never comes is dropped after 48 newer ones.
    pub fn push(&mut self, agg: &Aggregate, out: &mut Vec<FgdHour>) {
        if agg.period != Period::Hour || agg.quantity != Quantity::SO2 {
            return;
        }
        let is_inlet = *agg.stack == *self.inlet;
        if !is_inlet && *agg.stack != *self.outlet {
            return;
        }
        let (own, other) = if is_inlet {
            (&mut self.pending_inlet, &mut self.pending_outlet)
        } else {
            (&mut self.pending_outlet, &mut self.pending_inlet)
        };
        match other.iter().position(|o| o.start == agg.start) {
            Some(i) => {
                let Some(partner) = other.remove(i) else {
                    return;
                };
                out.push(if is_inlet {
                    fgd_hour(agg, &partner)
                } else {
                    fgd_hour(&partner, agg)
                });
            }
            None => {
                if own.len() == PENDING_HOURS {
                    own.pop_front();
                }
                own.push_back(agg.clone());
            }
        }
    }
}

/// SO2 removal of a stack pair over a local calendar period, from its valid hours.
#[derive(Debug, Clone, PartialEq)]
pub struct FgdSummary {
    pub inlet: Arc<str>,
    pub outlet: Arc<str>,
    pub period: CalendarPeriod,
    pub start: Timestamp,
    pub end: Timestamp,
    pub inlet_kg: f64,
    pub outlet_kg: f64,
    pub removed_kg: f64,
    /// Σ removed / Σ inlet over the valid hours.
    pub efficiency: Option<f64>,
    pub valid_hours: u32,
    pub invalid_hours: u32,
}

/// Day, month or year summaries of paired hours (one pair, any order).
pub fn summarise(hours: &[FgdHour], period: CalendarPeriod, offset: UtcOffset) -> Vec<FgdSummary> {
    let mut groups: BTreeMap<i64, FgdSummary> = BTreeMap::new();
    for h in hours {
        let Some((start, end)) = calendar_bounds(h.start, period, offset) else {
            continue;
        };
        let s = groups.entry(start.millis()).or_insert_with(|| FgdSummary {
            inlet: Arc::clone(&h.inlet),
            outlet: Arc::clone(&h.outlet),
            period,
            start,
            end,
            inlet_kg: 0.0,
            outlet_kg: 0.0,
            removed_kg: 0.0,
            efficiency: None,
            valid_hours: 0,
            invalid_hours: 0,
        });
        match (h.valid, h.inlet_kg, h.outlet_kg) {
            (true, Some(i), Some(o)) => {
                s.valid_hours += 1;
                s.inlet_kg += i;
                s.outlet_kg += o;
                s.removed_kg += i - o;
            }
            _ => s.invalid_hours += 1,
        }
    }
    groups
        .into_values()
        .map(|mut s| {
            s.efficiency = (s.inlet_kg > 0.0).then(|| s.removed_kg / s.inlet_kg);
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::HOUR_MS;
    use crate::model::{Flag, Unit};

    const T0: i64 = 1_767_196_800_000;

    fn so2_hour(stack: &str, i: i64, mass_kg: f64, valid: bool) -> Aggregate {
        Aggregate {
            period: Period::Hour,
            start: Timestamp(T0 + i * HOUR_MS),
            end: Timestamp(T0 + (i + 1) * HOUR_MS),
            stack: Arc::from(stack),
            quantity: Quantity::SO2,
            unit: Unit::MgPerM3,
            valid,
            flag: if valid { Flag::N } else { Flag::C },
            count: 60,
            total: 60,
            raw_avg: None,
            avg: None,
            min: None,
            max: None,
            corrected_avg: None,
            corrected_min: None,
            corrected_max: None,
            rate_avg: Some(mass_kg),
            mass_kg: valid.then_some(mass_kg),
            note: None,
            revision: 0,
        }
    }

    #[test]
    fn removal_and_efficiency_of_one_hour() {
        // inlet 1 200 kg, outlet 24 kg: removed 1 176 kg, η = 1 176/1 200 = 0.98
        let h = fgd_hour(
            &so2_hour("in", 0, 1200.0, true),
            &so2_hour("out", 0, 24.0, true),
        );
        assert_eq!(h.removed_kg, Some(1176.0));
        assert_eq!(h.efficiency, Some(0.98));
        assert!(h.valid);
        let h = fgd_hour(
            &so2_hour("in", 0, 1200.0, true),
            &so2_hour("out", 0, 24.0, false),
        );
        assert_eq!((h.removed_kg, h.efficiency, h.valid), (None, None, false));
        let h = fgd_hour(
            &so2_hour("in", 0, 0.0, true),
            &so2_hour("out", 0, 0.0, true),
        );
        assert_eq!((h.efficiency, h.valid), (None, false), "no SO2 entered");
    }

    #[test]
    fn pairer_matches_hours_in_any_order() {
        let mut p = FgdPairer::new(Arc::from("in"), Arc::from("out"));
        let mut out = Vec::new();
        p.push(&so2_hour("out", 0, 20.0, true), &mut out);
        p.push(&so2_hour("in", 1, 1100.0, true), &mut out);
        p.push(&so2_hour("other", 0, 5.0, true), &mut out);
        assert!(out.is_empty());
        p.push(&so2_hour("in", 0, 1000.0, true), &mut out);
        p.push(&so2_hour("out", 1, 11.0, true), &mut out);
        let got: Vec<_> = out.iter().map(|h| (h.start, h.removed_kg)).collect();
        // 1 000 − 20 = 980; 1 100 − 11 = 1 089
        assert_eq!(
            got,
            [
                (Timestamp(T0), Some(980.0)),
                (Timestamp(T0 + HOUR_MS), Some(1089.0))
            ]
        );
        assert_eq!(&*out[0].inlet, "in");
    }

    #[test]
    fn day_summary_uses_valid_hours() {
        let hours = [
            // 1 000 − 20 = 980
            fgd_hour(
                &so2_hour("in", 0, 1000.0, true),
                &so2_hour("out", 0, 20.0, true),
            ),
            // 1 000 − 40 = 960
            fgd_hour(
                &so2_hour("in", 1, 1000.0, true),
                &so2_hour("out", 1, 40.0, true),
            ),
            fgd_hour(
                &so2_hour("in", 2, 1000.0, false),
                &so2_hour("out", 2, 10.0, true),
            ),
            // next local day
            fgd_hour(
                &so2_hour("in", 24, 500.0, true),
                &so2_hour("out", 24, 5.0, true),
            ),
        ];
        let days = summarise(&hours, CalendarPeriod::Day, UtcOffset::CHINA);
        assert_eq!(days.len(), 2);
        // Σ removed 1 940 of Σ inlet 2 000: η = 0.97
        assert_eq!(
            (days[0].removed_kg, days[0].inlet_kg, days[0].outlet_kg),
            (1940.0, 2000.0, 60.0)
        );
        assert_eq!(days[0].efficiency, Some(0.97));
        assert_eq!((days[0].valid_hours, days[0].invalid_hours), (2, 1));
        assert_eq!(days[1].start, Timestamp(T0 + 24 * HOUR_MS));
        let months = summarise(&hours, CalendarPeriod::Month, UtcOffset::CHINA);
        // Σ removed 1 940 + 495 = 2 435 kg in January
        assert_eq!(months.len(), 1);
        assert_eq!(months[0].removed_kg, 2435.0);
    }
}
