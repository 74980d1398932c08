//! Code tables: system codes (ST), command codes (CN) and flue-gas factor codes, with the
//! HJ/T 212-2005 factor codes still sent by older data loggers and analysers.

use std::fmt;

use crate::model::{Quantity, Unit};

use super::data_type::DataType;
use super::factor_table;

/// ST: which kind of monitoring system the packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemCode {
    /// 22: ambient air quality.
    AmbientAir,
    /// 31: air pollution source (stacks, the CEMS case).
    AirPollutionSource,
    /// 32: water pollution source.
    WaterPollutionSource,
    /// 91: system interaction (platform replies such as 9011/9014).
    SystemInteraction,
    /// Any other two-digit code.
    Other(u8),
}

impl SystemCode {
    pub fn from_code(code: u8) -> SystemCode {
        match code {
            22 => SystemCode::AmbientAir,
            31 => SystemCode::AirPollutionSource,
            32 => SystemCode::WaterPollutionSource,
            91 => SystemCode::SystemInteraction,
            other => SystemCode::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            SystemCode::AmbientAir => 22,
            SystemCode::AirPollutionSource => 31,
            SystemCode::WaterPollutionSource => 32,
            SystemCode::SystemInteraction => 91,
            SystemCode::Other(code) => code,
        }
    }

    /// Meaning of the code; the list beyond the four named variants follows the ST table
    /// reproduced in caoyiliang/HJ212 `HJ212/Enum.cs`.
    pub fn description(self) -> Option<&'static str> {
        Some(match self.code() {
            21 => "surface water quality",
            22 => "ambient air quality",
            23 => "acoustic environment quality",
            24 => "groundwater quality",
            25 => "soil quality",
            26 => "seawater quality",
            27 => "volatile organic compounds",
            31 => "air pollution source",
            32 => "surface water pollution source",
            33 => "groundwater pollution source",
            34 => "marine pollution source",
            35 => "soil pollution source",
            36 => "noise pollution source",
            37 => "vibration pollution source",
            38 => "radioactive pollution source",
            39 => "construction-site dust source",
            41 => "electromagnetic pollution source",
            51 => "flue-gas emission process monitoring",
            52 => "wastewater emission process monitoring",
            91 => "system interaction",
            _ => return None,
        })
    }
}

impl fmt::Display for SystemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.code())
    }
}

/// CN: what the packet asks for or carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandCode {
    SetTimeoutAndRetries,
    GetTime,
    SetTime,
    TimeCalibrationRequest,
    GetRealTimeInterval,
    SetRealTimeInterval,
    GetMinuteInterval,
    SetMinuteInterval,
    SetPassword,
    RealTimeData,
    StopRealTimeData,
    RunningState,
    StopRunningState,
    DayData,
    DayRunningTime,
    MinuteData,
    HourData,
    RestartTime,
    Calibrate,
    SampleNow,
    CleanOrBlowback,
    ComparisonSample,
    RetainSample,
    SetSamplingPeriod,
    GetSamplingPeriod,
    GetSampleExtractionTime,
    GetDeviceId,
    GetInfo,
    SetInfo,
    RequestResponse,
    ExecutionResult,
    NotificationResponse,
    DataResponse,
    Other(u16),
}

/// HJ 212-2017 command codes with their meaning (standard appendix C; the same numbering is
/// used by caoyiliang/HJ212 `HJ212/Enum.cs`).
const COMMANDS: [(CommandCode, u16, &str); 33] = [
    (
        CommandCode::SetTimeoutAndRetries,
        1000,
        "set timeout and retry count",
    ),
    (CommandCode::GetTime, 1011, "get/upload field device time"),
    (CommandCode::SetTime, 1012, "set field device time"),
    (
        CommandCode::TimeCalibrationRequest,
        1013,
        "field device time calibration request",
    ),
    (
        CommandCode::GetRealTimeInterval,
        1061,
        "get/upload real-time data interval",
    ),
    (
        CommandCode::SetRealTimeInterval,
        1062,
        "set real-time data interval",
    ),
    (
        CommandCode::GetMinuteInterval,
        1063,
        "get/upload minute data interval",
    ),
    (
        CommandCode::SetMinuteInterval,
        1064,
        "set minute data interval",
    ),
    (CommandCode::SetPassword, 1072, "set field device password"),
    (CommandCode::RealTimeData, 2011, "real-time data"),
    (CommandCode::StopRealTimeData, 2012, "stop real-time data"),
    (CommandCode::RunningState, 2021, "equipment running state"),
    (
        CommandCode::StopRunningState,
        2022,
        "stop equipment running state",
    ),
    (CommandCode::DayData, 2031, "day data"),
    (CommandCode::DayRunningTime, 2041, "day running-time data"),
    (CommandCode::MinuteData, 2051, "minute data"),
    (CommandCode::HourData, 2061, "hour data"),
    (CommandCode::RestartTime, 2081, "data logger restart time"),
    (CommandCode::Calibrate, 3011, "zero/span calibration"),
    (CommandCode::SampleNow, 3012, "immediate sampling"),
    (
        CommandCode::CleanOrBlowback,
        3013,
        "start cleaning/blowback",
    ),
    (CommandCode::ComparisonSample, 3014, "comparison sampling"),
    (
        CommandCode::RetainSample,
        3015,
        "over-limit sample retention",
    ),
    (CommandCode::SetSamplingPeriod, 3016, "set sampling period"),
    (CommandCode::GetSamplingPeriod, 3017, "get sampling period"),
    (
        CommandCode::GetSampleExtractionTime,
        3018,
        "get sample extraction time",
    ),
    (CommandCode::GetDeviceId, 3019, "get device unique id"),
    (
        CommandCode::GetInfo,
        3020,
        "get/upload field device information",
    ),
    (CommandCode::SetInfo, 3021, "set field device parameter"),
    (
        CommandCode::RequestResponse,
        9011,
        "request response (QnRtn)",
    ),
    (
        CommandCode::ExecutionResult,
        9012,
        "execution result (ExeRtn)",
    ),
    (
        CommandCode::NotificationResponse,
        9013,
        "notification response",
    ),
    (
        CommandCode::DataResponse,
        9014,
        "data response (ack of an upload)",
    ),
];

impl CommandCode {
    pub fn from_code(code: u16) -> CommandCode {
        COMMANDS
            .iter()
            .find(|(_, c, _)| *c == code)
            .map_or(CommandCode::Other(code), |(cmd, _, _)| *cmd)
    }

    pub fn code(self) -> u16 {
        match self {
            CommandCode::Other(code) => code,
            known => COMMANDS
                .iter()
                .find(|(cmd, _, _)| *cmd == known)
                .map_or(0, |(_, code, _)| *code),
        }
    }

    pub fn description(self) -> Option<&'static str> {
        let code = self.code();
        COMMANDS
            .iter()
            .find(|(_, c, _)| *c == code)
            .map(|(_, _, text)| *text)
    }
}

impl fmt::Display for CommandCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.code())
    }
}

/// The edition of the standard a factor code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeEdition {
    Hj212_2017,
    Hjt212_2005,
}

impl CodeEdition {
    pub fn name(self) -> &'static str {
        match self {
            CodeEdition::Hj212_2017 => "HJ 212-2017",
            CodeEdition::Hjt212_2005 => "HJ/T 212-2005",
        }
    }
}

/// HJ/T 212-2005 flue-gas codes. The same mapping is used by the WHTianHong driver in
/// Yimning/Daily-Code (`rtuacq_protocol_cems_WHTianHong.c`), which relabels them to 2017 codes.
const CODES_2005: [(&str, Quantity); 9] = [
    ("01", Quantity::Dust),
    ("02", Quantity::SO2),
    ("03", Quantity::NOx),
    ("S01", Quantity::O2),
    ("S02", Quantity::Velocity),
    ("S03", Quantity::Temperature),
    ("S05", Quantity::Humidity),
    ("S08", Quantity::Pressure),
    ("B02", Quantity::Flow),
];

/// What a factor's `-Cou` (cumulative value of the period) measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// Cubic metres: the flue-gas volume of the period (a00000).
    CubicMetre,
    /// Kilograms: the pollutant mass emitted in the period.
    Kilogram,
}

impl Total {
    pub fn symbol(self) -> &'static str {
        match self {
            Total::CubicMetre => "m3",
            Total::Kilogram => "kg",
        }
    }
}

/// The units a factor code's values travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorUnits {
    /// Unit of `-Rtd`, `-Avg`, `-Min`, `-Max` and their `Zs` forms. `None` where the edition's
    /// table does not fix one that loggers keep to (see [`CODES_2005_UNITS`]).
    pub value: Option<Unit>,
    /// What `-Cou` is in; `None` for state parameters, which have no cumulative value.
    pub total: Option<Total>,
}

// Units of the HJ 212-2017 flue-gas codes: the code table in `factor_codes.tsv` (HJ 212-2017
// Table B.2, see [`factor_table`]). Appendix D.2.4 of the same standard computes flow per hour
// in m3/h and per day in m3/d, so a00000's Cou of a period is its volume. Real uploads agree:
// a 2061 hour upload quoted in a public PHP HJ 212 parser's test controller
// (`app\api\controller\Test`, 2024-01-23, MN 81733553216103, CRC 0E40 checks) carries
// `a00000-Avg=5.331` with `a00000-Cou=19191.973` (5.331 m3/s × 3600 s = 19 191.6 m3) and
// `a01013-Avg=-0.026` (kPa: a static pressure of −26 Pa).

/// Units of the HJ/T 212-2005 codes cemsd reads. The 2005 standard's own table was not
/// available; the 2017 table lists these codes as the 原编码 of its rows, with the units
/// above. Where loggers do not keep to one unit the value is stored without one rather than
/// converted on a guess: the one real 2005 upload we hold (the TianHong packet in
/// tests/fixtures/hj212) sends `B02-Rtd=19278`, which is m3/h (9.676 m/s × 0.8 m2 × 3600
/// at standard dry conditions), not m3/s, and `S08-Rtd=-1857`, which is Pa, not kPa; the code
/// lists of lingkejia/bocon-operation-app (`src/lib/polcodeList05.js`) likewise allow m3/s,
/// m3/h or L/s for B02 and kPa or Pa for S08.
pub const CODES_2005_UNITS: [(&str, Option<Unit>, Option<Total>); 9] = [
    ("01", Some(Unit::MgPerM3), Some(Total::Kilogram)),
    ("02", Some(Unit::MgPerM3), Some(Total::Kilogram)),
    ("03", Some(Unit::MgPerM3), Some(Total::Kilogram)),
    ("S01", Some(Unit::PercentVol), None),
    ("S02", Some(Unit::MetrePerSecond), None),
    ("S03", Some(Unit::DegC), None),
    ("S05", Some(Unit::PercentVol), None),
    ("S08", None, None),
    ("B02", None, Some(Total::CubicMetre)),
];

/// The units values of a flue-gas factor code travel in (the 2017 code table and
/// [`CODES_2005_UNITS`]); `None` for a code cemsd does not know.
pub fn factor_units(code: &str) -> Option<FactorUnits> {
    if let Some(entry) = factor_table::entry(code) {
        return Some(FactorUnits {
            value: Some(entry.unit),
            total: entry.total,
        });
    }
    CODES_2005_UNITS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|&(_, value, total)| FactorUnits { value, total })
}

/// The data type HJ 212-2017 Table B.2 gives a 2017 factor code's values; `None` for codes
/// outside cemsd's table (and the 2005 codes, whose table gave none).
pub fn data_type(code: &str) -> Option<DataType> {
    factor_table::entry(code).map(|entry| entry.data_type)
}

/// The quantity a factor code stands for, from either edition. The 2017 codes are the ones
/// `Quantity::hj212_code` defines, so the two directions cannot drift apart.
pub fn quantity_of(code: &str) -> Option<(Quantity, CodeEdition)> {
    Quantity::ALL
        .into_iter()
        .find(|q| q.hj212_code() == Some(code))
        .map(|q| (q, CodeEdition::Hj212_2017))
        .or_else(|| {
            CODES_2005
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, q)| (*q, CodeEdition::Hjt212_2005))
        })
}

/// HJ 212-2017 factor code of a quantity (what cemsd uploads).
pub fn code_2017(quantity: Quantity) -> Option<&'static str> {
    quantity.hj212_code()
}

/// HJ/T 212-2005 factor code of a quantity, for talking to old data loggers.
pub fn code_2005(quantity: Quantity) -> Option<&'static str> {
    CODES_2005
        .iter()
        .find(|(_, q)| *q == quantity)
        .map(|(code, _)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flue_gas_codes_2017_map_both_ways() {
        let expected = [
            ("a21026", Quantity::SO2),
            ("a21002", Quantity::NOx),
            ("a21003", Quantity::NO),
            ("a21004", Quantity::NO2),
            ("a34013", Quantity::Dust),
            ("a19001", Quantity::O2),
            ("a01012", Quantity::Temperature),
            ("a01013", Quantity::Pressure),
            ("a01011", Quantity::Velocity),
            ("a01014", Quantity::Humidity),
            ("a00000", Quantity::Flow),
            ("a21005", Quantity::CO),
        ];
        for (code, quantity) in expected {
            assert_eq!(
                quantity_of(code),
                Some((quantity, CodeEdition::Hj212_2017)),
                "{code}"
            );
            assert_eq!(code_2017(quantity), Some(code), "{quantity}");
        }
    }

    #[test]
    fn every_code_cemsd_knows_has_its_table_unit() {
        // HJ 212-2017 Table B.2; the store's unit of flow is m3/h, the wire's m3/s.
        let expected = [
            (Quantity::Flow, "m3/s", Some("m3")),
            (Quantity::Velocity, "m/s", None),
            (Quantity::Temperature, "degC", None),
            (Quantity::Pressure, "kPa", None),
            (Quantity::Humidity, "%vol", None),
            (Quantity::O2, "%vol", None),
            (Quantity::NOx, "mg/m3", Some("kg")),
            (Quantity::NO, "mg/m3", Some("kg")),
            (Quantity::NO2, "mg/m3", Some("kg")),
            (Quantity::CO, "mg/m3", Some("kg")),
            (Quantity::SO2, "mg/m3", Some("kg")),
            (Quantity::Dust, "mg/m3", Some("kg")),
        ];
        for (quantity, unit, total) in expected {
            let code = code_2017(quantity).unwrap_or_else(|| panic!("{quantity} has a code"));
            let units = factor_units(code).unwrap_or_else(|| panic!("{code} has units"));
            assert_eq!(units.value.map(Unit::symbol), Some(unit), "{code}");
            assert_eq!(units.total.map(Total::symbol), total, "{code}");
        }
        // Every 2017 code cemsd uploads is in the table, and every 2005 code it reads.
        for quantity in Quantity::ALL {
            if let Some(code) = code_2017(quantity) {
                assert!(factor_units(code).is_some(), "{code}");
            }
        }
        for (code, _) in CODES_2005 {
            assert!(factor_units(code).is_some(), "{code}");
        }
        assert_eq!(factor_units("a99999"), None);
        assert_eq!(
            factor_units("B02").and_then(|u| u.value),
            None,
            "m3/s or m3/h"
        );
    }

    #[test]
    fn codes_2005_map_both_ways() {
        for (code, quantity) in CODES_2005 {
            assert_eq!(
                quantity_of(code),
                Some((quantity, CodeEdition::Hjt212_2005))
            );
            assert_eq!(code_2005(quantity), Some(code));
        }
        assert_eq!(
            quantity_of("S04"),
            None,
            "2005 code without a known meaning"
        );
        assert_eq!(code_2005(Quantity::NO), None);
    }

    #[test]
    fn command_codes_round_trip_and_keep_unknown_ones() {
        for (cmd, code, _) in COMMANDS {
            assert_eq!(CommandCode::from_code(code), cmd);
            assert_eq!(cmd.code(), code);
        }
        assert_eq!(CommandCode::from_code(2051), CommandCode::MinuteData);
        assert_eq!(CommandCode::from_code(9014), CommandCode::DataResponse);
        assert_eq!(CommandCode::from_code(4321), CommandCode::Other(4321));
        assert_eq!(CommandCode::Other(4321).description(), None);
        assert_eq!(CommandCode::HourData.to_string(), "2061");
    }

    #[test]
    fn system_codes() {
        assert_eq!(SystemCode::from_code(31), SystemCode::AirPollutionSource);
        assert_eq!(SystemCode::from_code(27), SystemCode::Other(27));
        assert_eq!(
            SystemCode::Other(27).description(),
            Some("volatile organic compounds")
        );
        assert_eq!(SystemCode::Other(5).to_string(), "05");
    }
}
