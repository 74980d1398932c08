//! Byte sizes in the config: a number of bytes, or text with a unit ("1MiB", "256 KiB",
//! "2MB"), binary (KiB, MiB, GiB) or decimal (kB, MB, GB).

use std::fmt;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const KIB: u64 = 1 << 10;
    pub const MIB: u64 = 1 << 20;

    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let help = || {
            format!(
                "invalid size {text:?}: expected a number of bytes and a unit, e.g. \"1MiB\", \"512KiB\", \"256MB\""
            )
        };
        let number: u64 = number.parse().map_err(|_| help())?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(help()),
        };
        number.checked_mul(factor).map(ByteSize).ok_or_else(help)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// As a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= Self::MIB && n % Self::MIB == 0 {
            write!(f, "{}MiB", n / Self::MIB)
        } else if n >= Self::KIB && n % Self::KIB == 0 {
            write!(f, "{}KiB", n / Self::KIB)
        } else {
            write!(f, "{n} bytes")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Bytes(n) => Ok(ByteSize(n)),
            Written::Text(text) => ByteSize::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_binary_and_decimal_units() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("1MiB", 1 << 20),
            ("512 KiB", 512 << 10),
            ("256MB", 256_000_000),
            ("2kB", 2_000),
            ("7B", 7),
        ] {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(bytes)), "{text}");
        }
        for bad in ["", "MiB", "1.5MiB", "1 parsec", "-1"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
        assert_eq!(ByteSize(268_435_455).to_string(), "268435455 bytes");
    }
}
