//! A packet's text for a log line: the bytes as received, the access password replaced by
//! `PW=******`, so a log shipped to a support desk never carries a logger's or platform's
//! password (HJ 212-2017 Table 3: PW is the access password, 访问密码).

/// `raw` (a packet or what was meant to be one) as text, every `PW=` value masked and at
/// most `limit` characters kept. The masking rule is the crate's one
/// ([`crate::protocol::redact::mask_passwords`]), shared with the dead-letter table.
pub fn masked(raw: &[u8], limit: usize) -> String {
    let raw = crate::protocol::redact::mask_passwords(raw);
    let text = String::from_utf8_lossy(&raw);
    if text.chars().count() > limit {
        return text.chars().take(limit).collect::<String>() + "…";
    }
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_they_are() {
        assert_eq!(
            masked(b"##0101QN=1;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80", 200),
            "##0101QN=1;ST=32;CN=1062;PW=******;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80"
        );
        assert_eq!(masked(b"CN=9014;PW=", 200), "CN=9014;PW=******");
        assert_eq!(
            masked(b"PW=a;CP=&&NewPW=654321&&", 200),
            "PW=******;CP=&&NewPW=******&&"
        );
        assert_eq!(masked(b"QN=1;PW=secret;MN=2", 9), "QN=1;PW=*…");
    }
}
