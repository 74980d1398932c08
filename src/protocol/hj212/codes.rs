//! Code tables: system codes (ST), command codes (CN) and flue-gas factor codes, with the
//! HJ/T 212-2005 factor codes still sent by older data loggers and analysers.

use std::fmt;

use crate::model::Quantity;

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
