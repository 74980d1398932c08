//! How a report prints a number with a given count of decimals.

/// `v` with `decimals` decimals, rounded as GB/T 8170-2008 (数值修约规则) rounds: a
/// dropped part above half rounds up, below half down, exactly half to the even digit
/// (0.3555 → 0.356, 0.0225 → 0.022). "Exactly half" is judged on the shortest decimal that
/// reads back as `v`, the number as it was written, not on its binary approximation.
pub fn round_half_even(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let shortest = format!("{}", v.abs());
    let (int, frac) = shortest.split_once('.').unwrap_or((&shortest, ""));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes().take(decimals)).collect();
    digits.extend(std::iter::repeat_n(
        b'0',
        decimals.saturating_sub(frac.len()),
    ));
    let dropped = frac.as_bytes().get(decimals..).unwrap_or(&[]);
    let up = match dropped.split_first() {
        Some((&first, _)) if first > b'5' => true,
        Some((&b'5', rest)) => {
            rest.iter().any(|&d| d != b'0') || digits.last().is_some_and(|d| (d - b'0') % 2 == 1)
        }
        _ => false,
    };
    if up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - decimals;
    let (whole, part) = digits.split_at(split);
    let mut out = String::from_utf8_lossy(whole).to_string();
    if decimals > 0 {
        out.push('.');
        out.push_str(&String::from_utf8_lossy(part));
    }
    if v < 0.0 && out.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::round_half_even;

    #[test]
    fn rounds_half_to_even_on_the_written_decimal() {
        let cases = [
            (0.3555, 3, "0.356"),
            (0.0225, 3, "0.022"),
            (0.0235, 3, "0.024"),
            (2.5, 0, "2"),
            (3.5, 0, "4"),
            (1.2251, 2, "1.23"),
            (18.811666666666664, 2, "18.81"),
            (9.9996, 3, "10.000"),
            (411869.5652, 0, "411870"),
            (7.0, 2, "7.00"),
            (-1.005, 2, "-1.00"),
            (-0.004, 2, "0.00"),
            (0.0, 3, "0.000"),
        ];
        for (v, d, want) in cases {
            assert_eq!(round_half_even(v, d), want, "{v} to {d}");
        }
    }
}
