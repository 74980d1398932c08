//! Value codec: registers on the wire ↔ engineering values, and status indications → flags.
//! The simulator encodes with the same functions the collector decodes with, so a round trip
//! through a real Modbus connection proves both directions.

use crate::config::profile::{Channel, DataType, Profile, StatusBit, WordOrder};
use crate::model::{Flag, FlagSet};

/// A 4–20 mA loop reads below 3.6 mA only when the wire is broken or the transmitter has
/// failed (NAMUR NE 43). 0.4 mA below live zero is 2.5 % of the 16 mA span.
const WIRE_BREAK_FRACTION: f64 = 0.4 / 16.0;

/// The value in `words` (at least `ty.registers()` of them; extra words are ignored).
/// Too few words give NaN, so a short reply can never pass for a reading.
pub fn decode_words(words: &[u16], ty: DataType, order: WordOrder) -> f64 {
    let Some(words) = words.get(..usize::from(ty.registers())) else {
        return f64::NAN;
    };
    let bits = canonical_bits(words, order);
    match ty {
        DataType::U16 => f64::from(bits as u16),
        DataType::I16 => f64::from(bits as u16 as i16),
        DataType::U32 => f64::from(bits as u32),
        DataType::I32 => f64::from(bits as u32 as i32),
        DataType::F32 => f64::from(f32::from_bits(bits as u32)),
        DataType::F64 => f64::from_bits(bits),
    }
}

/// The registers that carry `value` as `ty` in `order`. Integer types round to nearest and
/// saturate at the type's limits (NaN becomes 0), as a device clamps an out-of-range output.
pub fn encode_value(value: f64, ty: DataType, order: WordOrder) -> Vec<u16> {
    // `as` from f64 to an integer saturates and maps NaN to 0, which is the rule we want.
    let bits = match ty {
        DataType::U16 => u64::from(value.round() as u16),
        DataType::I16 => u64::from(value.round() as i16 as u16),
        DataType::U32 => u64::from(value.round() as u32),
        DataType::I32 => u64::from(value.round() as i32 as u32),
        DataType::F32 => u64::from((value as f32).to_bits()),
        DataType::F64 => value.to_bits(),
    };
    wire_words(bits, usize::from(ty.registers()), order)
}

/// Joins registers into one integer, most significant word first after undoing `order`.
fn canonical_bits(words: &[u16], order: WordOrder) -> u64 {
    let n = words.len();
    (0..n).fold(0u64, |acc, i| {
        let word = words[if order.words_reversed() { n - 1 - i } else { i }];
        let word = if order.bytes_swapped() {
            word.swap_bytes()
        } else {
            word
        };
        (acc << 16) | u64::from(word)
    })
}

/// Splits the low `n` words of `bits` into registers as a device in `order` sends them.
fn wire_words(bits: u64, n: usize, order: WordOrder) -> Vec<u16> {
    let mut words: Vec<u16> = (0..n)
        .map(|i| (bits >> (16 * (n - 1 - i))) as u16)
        .collect();
    if order.words_reversed() {
        words.reverse();
    }
    if order.bytes_swapped() {
        for word in &mut words {
            *word = word.swap_bytes();
        }
    }
    words
}

/// Maps `x` from the interval `from` onto `to`.
fn linear(from: [f64; 2], to: [f64; 2], x: f64) -> f64 {
    to[0] + (x - from[0]) / (from[1] - from[0]) * (to[1] - to[0])
}

/// The engineering value of `channel` in `words`, with the flags the value itself implies.
///
/// A channel with `raw_range` and a span (`span_override`, else the channel's own) is an
/// analogue output: the span maps the counts. Otherwise `raw · scale + offset` applies, and
/// `raw_range`, if given, still marks wire breaks and over-range counts.
///
/// Flags: not a finite number → D with a NaN value; counts more than 0.4 mA-equivalent below
/// live zero → D (wire break); counts above `raw_range[1]` or a value above `range[1]` → T.
pub fn channel_value(
    profile: &Profile,
    channel: &Channel,
    words: &[u16],
    span_override: Option<[f64; 2]>,
) -> (f64, FlagSet) {
    let raw = decode_words(words, channel.data_type, profile.word_order_of(channel));
    if !raw.is_finite() {
        return (f64::NAN, FlagSet::of(Flag::D));
    }
    let mut flags = FlagSet::EMPTY;
    if let Some([raw_low, raw_high]) = channel.raw_range {
        if raw < raw_low - (raw_high - raw_low) * WIRE_BREAK_FRACTION {
            flags.insert(Flag::D);
        } else if raw > raw_high {
            flags.insert(Flag::T);
        }
    }
    let value = match (channel.raw_range, span_override.or(channel.span)) {
        (Some(raw_range), Some(span)) => linear(raw_range, span, raw),
        _ => raw * channel.scale + channel.offset,
    };
    if channel.range.is_some_and(|[_, high]| value > high) {
        flags.insert(Flag::T);
    }
    (value, flags)
}

/// The registers a device sends for `value` on `channel`: the exact inverse of
/// [`channel_value`] (span or scale/offset, then type and word order).
pub fn encode_channel(
    profile: &Profile,
    channel: &Channel,
    value: f64,
    span_override: Option<[f64; 2]>,
) -> Vec<u16> {
    let raw = match (channel.raw_range, span_override.or(channel.span)) {
        (Some(raw_range), Some(span)) => linear(span, raw_range, value),
        _ => (value - channel.offset) / channel.scale,
    };
    encode_value(raw, channel.data_type, profile.word_order_of(channel))
}

/// What was read for each of a profile's status entries, in the order of `Profile::status`:
/// the register word, or 0/1 for a coil or discrete input; `None` where the read failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusData(pub Vec<Option<u16>>);

/// Whether `status` says its flag applies, given the word (or 0/1 bit) read for it.
pub fn status_applies(status: &StatusBit, word: u16) -> bool {
    let asserted = match (status.bit, status.equals) {
        (Some(bit), _) => word.checked_shr(u32::from(bit)).unwrap_or(0) & 1 == 1,
        (None, Some(code)) => word == code,
        (None, None) => word != 0,
    };
    asserted == status.active
}

/// Flags the instrument reports through its status entries. Entries that were not read add
/// nothing: a failed read is the transport's to flag, not the instrument's.
pub fn status_flags(profile: &Profile, data: &StatusData) -> FlagSet {
    profile
        .status
        .iter()
        .zip(&data.0)
        .filter(|(status, word)| word.is_some_and(|w| status_applies(status, w)))
        .fold(FlagSet::EMPTY, |flags, (status, _)| flags.with(status.flag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn profile(text: &str) -> Profile {
        Profile::parse("t", Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    const HEADER: &str =
        "vendor = \"T\"\nmodel = \"T\"\nsource = \"unit test\"\nverified = false\n";

    #[test]
    fn juguang_cems_2000d_reply_decodes_to_1_110() {
        // Reply 01 03 04 1C D5 3F 8E 7D CF: data bytes 1C D5 3F 8E, word order CDAB,
        // so the float is 0x3F8E1CD5: sign 0, exponent 0x7F (2^0), mantissa 0x0E1CD5 = 924885,
        // value = 1 + 924885 / 2^23 = 9313493 / 8388608 = 1.11025488...
        let value = decode_words(&[0x1CD5, 0x3F8E], DataType::F32, WordOrder::CDAB);
        assert_eq!(value, 9_313_493.0 / 8_388_608.0);
        assert_eq!(format!("{value:.3}"), "1.110");
    }

    #[test]
    fn word_orders_place_bytes_as_named() {
        // 0x11223344 as u32: A=11 B=22 C=33 D=44
        let cases = [
            (WordOrder::ABCD, [0x1122, 0x3344]),
            (WordOrder::CDAB, [0x3344, 0x1122]),
            (WordOrder::BADC, [0x2211, 0x4433]),
            (WordOrder::DCBA, [0x4433, 0x2211]),
        ];
        for (order, words) in cases {
            assert_eq!(
                encode_value(f64::from(0x1122_3344u32), DataType::U32, order),
                words,
                "{order:?}"
            );
            assert_eq!(
                decode_words(&words, DataType::U32, order),
                f64::from(0x1122_3344u32),
                "{order:?}"
            );
        }
    }

    #[test]
    fn sixty_four_bit_cdab_reverses_all_four_words() {
        // 1.0f64 = 0x3FF0_0000_0000_0000; CDAB sends the least significant word first.
        assert_eq!(
            encode_value(1.0, DataType::F64, WordOrder::CDAB),
            [0x0000, 0x0000, 0x0000, 0x3FF0]
        );
        assert_eq!(
            encode_value(1.0, DataType::F64, WordOrder::DCBA),
            [0x0000, 0x0000, 0x0000, 0xF03F]
        );
        assert_eq!(
            encode_value(1.0, DataType::F64, WordOrder::BADC),
            [0xF03F, 0x0000, 0x0000, 0x0000]
        );
        assert_eq!(
            decode_words(
                &[0x0000, 0x0000, 0x0000, 0x3FF0],
                DataType::F64,
                WordOrder::CDAB
            ),
            1.0
        );
    }

    #[test]
    fn every_type_and_order_round_trips_exactly() {
        // Values each type represents exactly, including the extremes.
        let values: [(DataType, &[f64]); 6] = [
            (DataType::U16, &[0.0, 1.0, 4660.0, 65535.0]),
            (DataType::I16, &[-32768.0, -1234.0, 0.0, 32767.0]),
            (DataType::U32, &[0.0, 305_419_896.0, 4_294_967_295.0]),
            (
                DataType::I32,
                &[-2_147_483_648.0, -98_765.0, 2_147_483_647.0],
            ),
            (
                DataType::F32,
                &[-0.5, 1.110_254_883_766_174_3, 12.5, f32::MAX as f64],
            ),
            (
                DataType::F64,
                &[-1.0e-300, 0.1, 1_234_567.891_011, f64::MAX],
            ),
        ];
        for (ty, vs) in values {
            for order in WordOrder::ALL {
                for &v in vs {
                    let words = encode_value(v, ty, order);
                    assert_eq!(words.len(), usize::from(ty.registers()));
                    assert_eq!(decode_words(&words, ty, order), v, "{ty:?} {order:?} {v}");
                }
            }
        }
    }

    #[test]
    fn i16_negative_is_twos_complement() {
        // -2 = 0xFFFE; BADC swaps the bytes of the one register.
        assert_eq!(
            decode_words(&[0xFFFE], DataType::I16, WordOrder::ABCD),
            -2.0
        );
        assert_eq!(
            decode_words(&[0xFEFF], DataType::I16, WordOrder::BADC),
            -2.0
        );
        assert_eq!(
            decode_words(&[0xFFFE], DataType::U16, WordOrder::ABCD),
            65534.0
        );
    }

    #[test]
    fn integers_round_and_saturate() {
        let e = |v, ty| decode_words(&encode_value(v, ty, WordOrder::ABCD), ty, WordOrder::ABCD);
        assert_eq!(e(2.5, DataType::U16), 3.0);
        assert_eq!(e(-2.5, DataType::I16), -3.0);
        assert_eq!(e(70_000.0, DataType::U16), 65535.0);
        assert_eq!(e(-5.0, DataType::U16), 0.0);
        assert_eq!(e(-40_000.0, DataType::I16), -32768.0);
        assert_eq!(e(1e12, DataType::I32), 2_147_483_647.0);
        assert_eq!(e(f64::NAN, DataType::U32), 0.0);
    }

    #[test]
    fn short_input_is_nan() {
        assert!(decode_words(&[0x3F80], DataType::F32, WordOrder::ABCD).is_nan());
        assert!(decode_words(&[], DataType::U16, WordOrder::ABCD).is_nan());
    }

    fn scs900() -> Profile {
        profile(&format!(
            "{HEADER}[[channel]]\nname = \"so2\"\nquantity = \"SO2\"\nunit = \"mg/m3\"\n\
             table = \"holding\"\naddress = 4000\ntype = \"i16\"\n\
             raw_range = [5530, 27648]\nspan = [0, 750]\nrange = [0, 750]\n"
        ))
    }

    #[test]
    fn scs900_counts_map_onto_the_span() {
        // value = (raw − 5530) / (27648 − 5530) · 750 = (raw − 5530) / 22118 · 750
        let p = scs900();
        let ch = &p.channels[0];
        let at = |raw: u16| channel_value(&p, ch, &[raw], None);
        assert_eq!(at(5530), (0.0, FlagSet::EMPTY));
        assert_eq!(at(27648), (750.0, FlagSet::EMPTY));
        // 16589 − 5530 = 11059 = 22118 / 2 → 375
        assert_eq!(at(16589), (375.0, FlagSet::EMPTY));
        // a site span of 0–1500 doubles it
        assert_eq!(
            channel_value(&p, ch, &[16589], Some([0.0, 1500.0])).0,
            750.0
        );
        assert_eq!(encode_channel(&p, ch, 375.0, None), [16589]);
    }

    #[test]
    fn scs900_wire_break_and_over_range_are_flagged() {
        let p = scs900();
        let ch = &p.channels[0];
        let flags = |raw: u16| channel_value(&p, ch, &[raw], None).1;
        // wire-break threshold: 5530 − 22118 · 0.025 = 5530 − 552.95 = 4977.05
        assert_eq!(flags(4977), FlagSet::of(Flag::D));
        assert_eq!(flags(4978), FlagSet::EMPTY);
        // 4978 is 3.6 mA-ish: value (4978 − 5530)/22118·750 = −18.72..., slightly negative, kept
        assert!(channel_value(&p, ch, &[4978], None).0 < 0.0);
        // 27649 counts: over raw range and over measuring range
        assert_eq!(flags(27649), FlagSet::of(Flag::T));
        // 0 counts = 0 mA: broken loop
        assert_eq!(flags(0), FlagSet::of(Flag::D));
    }

    #[test]
    fn scale_offset_and_range() {
        let p = profile(&format!(
            "{HEADER}[[channel]]\nname = \"t\"\nquantity = \"temp\"\nunit = \"degC\"\n\
             table = \"input\"\naddress = 0\ntype = \"u16\"\nscale = 0.5\noffset = -40\n\
             range = [-40, 200]\n"
        ));
        let ch = &p.channels[0];
        // 131 · 0.5 − 40 = 25.5
        assert_eq!(channel_value(&p, ch, &[131], None), (25.5, FlagSet::EMPTY));
        assert_eq!(encode_channel(&p, ch, 25.5, None), [131]);
        // 481 · 0.5 − 40 = 200.5 > 200
        assert_eq!(
            channel_value(&p, ch, &[481], None),
            (200.5, FlagSet::of(Flag::T))
        );
    }

    #[test]
    fn non_finite_floats_are_instrument_faults() {
        let p = profile(&format!(
            "{HEADER}[[channel]]\nname = \"o2\"\nquantity = \"O2\"\nunit = \"%vol\"\n\
             table = \"holding\"\naddress = 0\ntype = \"f32\"\n"
        ));
        let ch = &p.channels[0];
        for words in [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]] {
            let (value, flags) = channel_value(&p, ch, &words, None);
            assert!(value.is_nan(), "{words:04X?}");
            assert_eq!(flags, FlagSet::of(Flag::D), "{words:04X?}");
        }
    }

    #[test]
    fn status_entries_map_to_flags() {
        let p = profile(&format!(
            "{HEADER}[[channel]]\nname = \"so2\"\nquantity = \"SO2\"\nunit = \"ppm\"\n\
             table = \"holding\"\naddress = 0\ntype = \"u16\"\n\
             [[status]]\ntable = \"discrete_input\"\naddress = 4\nflag = \"C\"\n\
             [[status]]\ntable = \"coil\"\naddress = 5\nactive = false\nflag = \"D\"\n\
             [[status]]\ntable = \"holding\"\naddress = 3995\nbit = 3\nflag = \"M\"\n\
             [[status]]\ntable = \"holding\"\naddress = 100\nequals = 2\nflag = \"D\"\n"
        ));
        let flags = |words: [Option<u16>; 4]| status_flags(&p, &StatusData(words.to_vec()));
        // DI 4 off, coil 5 on (healthy), bit 3 clear, state 0
        assert_eq!(flags([Some(0), Some(1), Some(0), Some(0)]), FlagSet::EMPTY);
        // DI 4 on → C; coil 5 off → D
        assert_eq!(
            flags([Some(1), Some(0), Some(0), Some(0)]),
            FlagSet::of(Flag::C).with(Flag::D)
        );
        // 0x0008 has bit 3 set → M; other bits do not matter: 0xFFF7 has it clear
        assert_eq!(
            flags([Some(0), Some(1), Some(0x0008), Some(0)]),
            FlagSet::of(Flag::M)
        );
        assert_eq!(
            flags([Some(0), Some(1), Some(0xFFF7), Some(0)]),
            FlagSet::EMPTY
        );
        // state code 2 → D, 3 → nothing from this entry
        assert_eq!(
            flags([Some(0), Some(1), Some(0), Some(2)]),
            FlagSet::of(Flag::D)
        );
        assert_eq!(flags([Some(0), Some(1), Some(0), Some(3)]), FlagSet::EMPTY);
        // an unread entry adds nothing
        assert_eq!(flags([None, None, None, None]), FlagSet::EMPTY);
    }
}
