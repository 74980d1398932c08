//! Numeric data types of HJ 212-2017 (6.3.3.2.2): `Nx.y` is a number of at most `x` integer
//! digits and `y` decimals, written as a variable-length string with a decimal point and a
//! sign where needed ("N14.2：用可变长字符串形式表达的数字型，表示 14 位整数和 2 位小数，
//! 带小数点，带符号"); `Nx` has no decimals. Table B.2 gives each factor code its type, so a
//! platform reads `a21026-Avg=18.51` (N5.2), never `18.514332218102904`.

use std::fmt;
use std::str::FromStr;

/// `Nx.y`: at most `integer_digits` before the point, exactly `decimals` after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataType {
    pub integer_digits: u8,
    pub decimals: u8,
}

/// A value that cannot be written in its data type: it is left out and reported, never sent
/// cut down to a different number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DoesNotFit {
    /// NaN or an infinity: no data type carries them.
    NotFinite(f64),
    /// More integer digits than the type allows once rounded.
    TooManyDigits { value: f64, data_type: DataType },
}

impl fmt::Display for DoesNotFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DoesNotFit::NotFinite(value) => write!(f, "{value} is not a finite number"),
            DoesNotFit::TooManyDigits { value, data_type } => write!(
                f,
                "{value} has more than {} integer digits ({data_type})",
                data_type.integer_digits
            ),
        }
    }
}

impl std::error::Error for DoesNotFit {}

impl DataType {
    pub const fn new(integer_digits: u8, decimals: u8) -> DataType {
        DataType {
            integer_digits,
            decimals,
        }
    }

    /// `value` rounded to the type's decimals (to the nearest, as `format!` rounds the exact
    /// binary value), or why it does not fit. A negative zero after rounding is written `0`.
    pub fn format(self, value: f64) -> Result<String, DoesNotFit> {
        if !value.is_finite() {
            return Err(DoesNotFit::NotFinite(value));
        }
        let mut text = format!("{value:.*}", usize::from(self.decimals));
        if let Some(unsigned) = text.strip_prefix('-') {
            if unsigned.bytes().all(|b| b == b'0' || b == b'.') {
                text = unsigned.to_string();
            }
        }
        let unsigned = text.strip_prefix('-').unwrap_or(&text);
        let integer_digits = unsigned.find('.').unwrap_or(unsigned.len());
        if integer_digits > usize::from(self.integer_digits) {
            return Err(DoesNotFit::TooManyDigits {
                value,
                data_type: self,
            });
        }
        Ok(text)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decimals {
            0 => write!(f, "N{}", self.integer_digits),
            decimals => write!(f, "N{}.{decimals}", self.integer_digits),
        }
    }
}

/// Why a data-type text such as `N5.2` could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDataType(pub String);

impl fmt::Display for BadDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a data type Nx or Nx.y", self.0)
    }
}

impl FromStr for DataType {
    type Err = BadDataType;

    fn from_str(text: &str) -> Result<DataType, BadDataType> {
        let bad = || BadDataType(text.to_string());
        let digits = text.strip_prefix('N').ok_or_else(bad)?;
        let (integer, decimals) = digits.split_once('.').unwrap_or((digits, "0"));
        let number = |s: &str| s.parse::<u8>().ok().filter(|n| *n <= 18);
        match (number(integer), number(decimals)) {
            (Some(integer_digits), Some(decimals)) if integer_digits > 0 => {
                Ok(DataType::new(integer_digits, decimals))
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> DataType {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn values_are_written_with_the_types_decimals() {
        // The value of the issue: SO2 is N5.2.
        assert_eq!(n("N5.2").format(18.514332218102904), Ok("18.51".into()));
        assert_eq!(n("N5.2").format(18.0), Ok("18.00".into()));
        assert_eq!(n("N4").format(9.6), Ok("10".into()));
        assert_eq!(
            n("N3.1").format(6.25),
            Ok("6.2".into()),
            "6.25 is exact: to even"
        );
        assert_eq!(n("N3.1").format(6.2500001), Ok("6.3".into()));
        assert_eq!(n("N5.3").format(-0.026), Ok("-0.026".into()));
        assert_eq!(
            n("N5.2").format(-0.001),
            Ok("0.00".into()),
            "no negative zero"
        );
        assert_eq!(n("N6.1").format(999_999.94), Ok("999999.9".into()));
    }

    #[test]
    fn values_that_do_not_fit_are_reported_not_cut() {
        let n31 = n("N3.1");
        assert_eq!(
            n31.format(999.96),
            Err(DoesNotFit::TooManyDigits {
                value: 999.96,
                data_type: n31
            }),
            "rounds up to 1000.0: four integer digits"
        );
        assert!(n31.format(-1234.0).is_err());
        assert!(matches!(
            n31.format(f64::NAN),
            Err(DoesNotFit::NotFinite(_))
        ));
    }

    #[test]
    fn data_types_parse_and_print() {
        assert_eq!(n("N5.2"), DataType::new(5, 2));
        assert_eq!(n("N4"), DataType::new(4, 0));
        assert_eq!(DataType::new(4, 0).to_string(), "N4");
        assert_eq!(DataType::new(6, 1).to_string(), "N6.1");
        for bad in ["", "N", "5.2", "N0.2", "Nx.1", "N5.", "N99"] {
            assert!(bad.parse::<DataType>().is_err(), "{bad}");
        }
    }
}
