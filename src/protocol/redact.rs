//! HJ 212 packets carry the logger's password in clear (`PW=123456`, and `NewPW=` when a
//! platform sets a new one). Logs and the dead-letter table keep excerpts of packets that
//! were refused, and are read, copied and pasted into tickets by people who must not learn
//! the passwords. Every such excerpt goes through [`mask_passwords`] first.

use std::borrow::Cow;

/// What a password value is replaced with; the same whatever its length, so the length is
/// not given away either.
pub const MASK: &str = "******";

/// Bytes that end a field value in an HJ 212 data segment (and in the line that holds it).
const VALUE_END: &[u8] = b";,&\r\n";

/// Replaces the value of every key ending in `PW` (`PW=`, `NewPW=`, in any case) with
/// [`MASK`]. A value cut off by the end of an excerpt is masked too. Bytes that are not
/// text pass unchanged; input without a password is returned as it is.
pub fn mask_passwords(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = next_password(bytes, 0) else {
        return Cow::Borrowed(bytes);
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut copied = 0;
    let mut value_start = first;
    loop {
        out.extend_from_slice(&bytes[copied..value_start]);
        out.extend_from_slice(MASK.as_bytes());
        copied = bytes[value_start..]
            .iter()
            .position(|b| VALUE_END.contains(b))
            .map_or(bytes.len(), |end| value_start + end);
        match next_password(bytes, copied) {
            Some(next) => value_start = next,
            None => break,
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    Cow::Owned(out)
}

/// [`mask_passwords`] for text: an excerpt for a log line.
pub fn mask_passwords_text(text: &str) -> Cow<'_, str> {
    match mask_passwords(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Only ASCII was replaced, at ASCII boundaries, so the text stays UTF-8.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// Offset of the value after the next `PW=` (any case) at or after `from`.
fn next_password(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(3)
        .position(|w| {
            w[0].eq_ignore_ascii_case(&b'P') && w[1].eq_ignore_ascii_case(&b'W') && w[2] == b'='
        })
        .map(|at| from + at + 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        String::from_utf8_lossy(&mask_passwords(text.as_bytes())).into_owned()
    }

    #[test]
    fn the_password_of_a_packet_is_masked_and_the_rest_kept() {
        assert_eq!(
            masked("##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80"),
            "##0101QN=20160801085857223;ST=32;CN=1062;PW=******;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80"
        );
    }

    #[test]
    fn every_password_is_masked_whatever_its_case_length_and_end() {
        // a new password set by the platform, inside CP
        assert_eq!(
            masked("CN=1072;PW=123456;MN=A;CP=&&NewPW=654321&&"),
            "CN=1072;PW=******;MN=A;CP=&&NewPW=******&&"
        );
        assert_eq!(masked("pw=abc;Pw=abcdefghijkl,x"), "pw=******;Pw=******,x");
        // cut off by the end of an excerpt, or by the end of a line
        assert_eq!(masked("ST=31;CN=2011;PW=1234"), "ST=31;CN=2011;PW=******");
        assert_eq!(masked("PW=secret\r\n##0010"), "PW=******\r\n##0010");
        // an empty value is masked too, so nothing tells it apart
        assert_eq!(masked("PW=;MN=A"), "PW=******;MN=A");
        assert_eq!(masked("PW="), "PW=******");
    }

    #[test]
    fn input_without_a_password_is_borrowed_unchanged_bytes_and_all() {
        for input in [
            &b"QN=1;ST=31;CN=2011;MN=A"[..],
            b"",
            b"P",
            b"PW",
            &[0xff, 0xfe, b';'],
        ] {
            assert!(matches!(mask_passwords(input), Cow::Borrowed(b) if b == input));
        }
        // bytes that are not UTF-8 around a password stay as they were
        assert_eq!(
            mask_passwords(b"\xffPW=1;\xfe").into_owned(),
            b"\xffPW=******;\xfe".to_vec()
        );
    }

    #[test]
    fn text_keeps_its_characters() {
        assert_eq!(
            mask_passwords_text("污染源 PW=密码123;MN=甲"),
            "污染源 PW=******;MN=甲"
        );
        assert!(matches!(mask_passwords_text("no secret"), Cow::Borrowed(_)));
    }
}
