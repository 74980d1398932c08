//! Plain number payloads (`12.5`): the topic names device and channel, the receive time is
//! the reading's time.

use super::payload::{self, PayloadError, RawReading, Reason};

pub fn read(payload: &[u8]) -> Result<Vec<RawReading>, PayloadError> {
    let text = payload::text(payload)?.trim();
    let value = text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            PayloadError::new(Reason::NotANumber, format!("{text:?} is not a number"))
        })?;
    Ok(vec![RawReading::new(value)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_number() {
        let got = read(b" 12.5\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, vec![RawReading::new(12.5)]);
        assert_eq!(read(b"-3e-1").map(|r| r[0].value), Ok(-0.3));
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [&b"12.5 mg"[..], b"", b"inf", b"NaN"] {
            let reason = read(bad).err().map(|e| e.reason);
            assert_eq!(reason, Some(Reason::NotANumber), "{bad:?}");
        }
    }
}
