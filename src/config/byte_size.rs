//! A size in bytes as configs write it: "512MiB", "4GiB", "500MB", "1.5GB" or a plain number.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A size in bytes; binary (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("kB", 1_000),
    ("B", 1),
];

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "invalid size {text:?}: expected a number and a unit, e.g. \"512MiB\", \"4GiB\", \"500MB\""
            )
        };
        let trimmed = text.trim();
        let (number, factor) = UNITS
            .iter()
            .find_map(|(unit, factor)| Some((trimmed.strip_suffix(unit)?, *factor)))
            .unwrap_or((trimmed, 1));
        let value: f64 = number.trim().parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad());
        }
        let bytes = value * factor as f64;
        if bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, factor) = UNITS[..4]
            .iter()
            .find(|(_, factor)| self.0 >= *factor)
            .copied()
            .unwrap_or(("B", 1));
        if factor == 1 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{:.1} {unit}", self.0 as f64 / factor as f64)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_and_decimal_units() {
        let read = |text: &str| text.parse::<ByteSize>().map(|s| s.0);
        assert_eq!(read("4GiB"), Ok(4 << 30));
        assert_eq!(read("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(read("512MiB"), Ok(512 << 20));
        assert_eq!(read("100kB"), Ok(100_000));
        assert_eq!(read("4096"), Ok(4096));
        assert!(read("4 gigs").is_err());
        assert!(read("-1GiB").is_err());
        assert_eq!(ByteSize(3 << 30).to_string(), "3.0 GiB");
    }
}
