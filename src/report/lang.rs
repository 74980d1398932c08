//! The language a report speaks: Chinese first (what a bureau files), English on request.

use crate::model::{Quantity, Unit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// Names as HJ 75-2017 and HJ 212-2017 write them.
    pub fn quantity(self, q: Quantity) -> &'static str {
        let (zh, en) = match q {
            Quantity::Dust => ("颗粒物", "particulate"),
            Quantity::SO2 => ("二氧化硫", "SO2"),
            Quantity::NOx => ("氮氧化物", "NOx"),
            Quantity::NO => ("一氧化氮", "NO"),
            Quantity::NO2 => ("二氧化氮", "NO2"),
            Quantity::CO => ("一氧化碳", "CO"),
            Quantity::CO2 => ("二氧化碳", "CO2"),
            Quantity::HCl => ("氯化氢", "HCl"),
            Quantity::NH3 => ("氨", "NH3"),
            Quantity::O2 => ("氧含量", "O2"),
            Quantity::Flow => ("标干流量", "flow (std, dry)"),
            Quantity::Velocity => ("流速", "velocity"),
            Quantity::Temperature => ("烟温", "temperature"),
            Quantity::Pressure => ("烟气压力", "pressure"),
            Quantity::Humidity => ("烟气湿度", "moisture"),
        };
        self.pick(zh, en)
    }

    pub fn unit(self, u: Unit) -> &'static str {
        match u {
            Unit::PercentVol => "%",
            Unit::DegC => "℃",
            other => other.symbol(),
        }
    }

    pub fn record_kind(self, kind: &str) -> &'static str {
        match kind {
            "hour" => self.pick("小时数据", "hour records"),
            "day" => self.pick("日数据", "day records"),
            _ => self.pick("数据", "records"),
        }
    }
}
