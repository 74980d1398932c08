//! Store records as InfluxDB line protocol, in the schema docs/influx-schema.md describes.
//!
//! One line per record: measurement `<prefix>_<kind>` (reading, minute, hour, day, gap,
//! exceedance, event); tags channel, device, quantity, raw_unit, site, stack, unit (sorted by
//! key, as InfluxDB recommends; empty ones left out), so a series is one channel of one
//! device of one stack and kind, and nothing that changes from one record to the next splits
//! it. Fields: flag_code, raw, measured, corrected, limit, rate, min, max,
//! corrected_min, corrected_max, count, duration_ms, closed, revision, note.
//!
//! - The HJ 212 flag is a field, never a tag: as a tag it started a new series at every flag
//!   change, and a period revised with another flag landed beside its first version instead
//!   of replacing it. `flag_code` is the flag as a number ([`flag_code`]), the only form
//!   VictoriaMetrics and Prometheus keep (a string field becomes a series of no use there),
//!   and is on every line, so every line has a field.
//! - `channel` is lower-case: profiles name channels `nox`, the NOx cemsd computes from NO and
//!   NO2 is stored as `NOx`, and both are one name in a chart.
//! - `unit` is the unit of measured, corrected, limit, min and max; `raw` is in the analyser's
//!   own unit (ppm, ppb, mA counts scaled to the span, …), named by `raw_unit` on lines that
//!   carry `raw`.
//! - `limit` is the stack's emission limit of the pollutant (O2-corrected mg/m3, as
//!   `corrected`), on every line of a limited pollutant, so a chart or an alert compares two
//!   fields of one series.
//! - `closed` (gaps, exceedances, events) is 0 while the record is open and 1 once it has an
//!   end; a close is written on the same point as the opening, and both InfluxDB (last write)
//!   and VictoriaMetrics with deduplication (largest value) keep the 1.
//! - `revision` is on a period stored again after late readings: InfluxDB keeps the last
//!   write of a point, so the revision replaces the values of the first version.
//!
//! Escaping follows the line-protocol reference: measurement names escape comma and space;
//! tag keys, tag values and field keys escape comma, equals sign and space; string field
//! values escape double quote and backslash. Backslashes are doubled everywhere, so a value
//! ending in one cannot swallow the delimiter after it. Line breaks cannot be escaped in line
//! protocol, so they are written as the two characters `\n` (or `\r`).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::site_facts::SiteFacts;
use crate::config::influx::Precision;
use crate::model::{Flag, Unit};
use crate::process::normalise::DERIVED_NOX_CHANNEL;
use crate::store::{names_at, AuditEntry, NamesAt, Record, RecordKind};

/// Turns records into lines for one site and precision.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// Escaped measurement names by `RecordKind` code order.
    measurements: [String; 7],
    /// Escaped `<prefix>_audit`: audit entries, which the store carries as events.
    audit: String,
    /// Escaped site id.
    site: String,
    facts: SiteFacts,
    precision: Precision,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("timestamp {millis} ms cannot be written at precision {precision}")]
    TimestampOutOfRange {
        millis: i64,
        precision: &'static str,
    },
}

/// Lines for a run of records: one body, and where each record's line ends, so any
/// contiguous run of lines can be sent again without copying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedBatch {
    text: String,
    /// (seq, end offset) of each line in `text`, in order.
    ends: Vec<(u64, usize)>,
}

impl EncodedBatch {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The text of lines `range` (each ending in a newline).
    pub fn text(&self, range: std::ops::Range<usize>) -> &str {
        if range.is_empty() {
            return "";
        }
        let start = match range.start {
            0 => 0,
            i => self.ends[i - 1].1,
        };
        &self.text[start..self.ends[range.end - 1].1]
    }

    /// The seq of the record on line `index`.
    pub fn seq(&self, index: usize) -> u64 {
        self.ends[index].0
    }

    /// Lines already encoded (dead letters sent again), each keyed by `key` in place of a
    /// seq; a line break is added to each.
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = (u64, &'a str)>) -> EncodedBatch {
        let mut batch = EncodedBatch {
            text: String::new(),
            ends: Vec::new(),
        };
        for (key, line) in lines {
            batch.text.push_str(line.trim_end_matches('\n'));
            batch.text.push('\n');
            batch.ends.push((key, batch.text.len()));
        }
        batch
    }
}

impl Encoder {
    pub fn new(measurement_prefix: &str, facts: SiteFacts, precision: Precision) -> Encoder {
        let measurements = crate::store::RecordKind::ALL.map(|kind| {
            let mut name = String::new();
            escape_measurement(&mut name, &format!("{measurement_prefix}_{kind}"));
            name
        });
        let mut site = String::new();
        escape_key_or_tag(&mut site, &facts.site);
        let mut audit = String::new();
        escape_measurement(&mut audit, &format!("{measurement_prefix}_audit"));
        Encoder {
            measurements,
            audit,
            site,
            facts,
            precision,
        }
    }

    /// Appends the line of `record` (with its newline) to `out`. On error `out` is unchanged.
    pub fn encode(&self, record: &Record, out: &mut String) -> Result<(), EncodeError> {
        self.encode_with(record, &mut SeriesLines::new(), out)
    }

    /// [`Encoder::encode`], taking the series' part of the line from `lines`, or building it
    /// there for the records after it.
    fn encode_with(
        &self,
        record: &Record,
        lines: &mut SeriesLines,
        out: &mut String,
    ) -> Result<(), EncodeError> {
        let ts = self.timestamp(record.ts.millis())?;
        if let Some(entry) = AuditEntry::from_record(record) {
            self.encode_audit(&entry, &record.stack, ts, out);
            return Ok(());
        }
        let raw = record.raw.filter(|v| v.is_finite());
        let line = lines
            .entry(SeriesIdentity::of(record, raw.is_some()))
            .or_insert_with(|| self.series_line(record, raw.is_some()));
        self.write_line(line, record, raw, ts, out);
        Ok(())
    }

    /// What the lines of one series share: the measurement and tag set, and the limit.
    fn series_line(&self, record: &Record, has_raw: bool) -> SeriesLine {
        let mut head = String::new();
        let kind_index = RecordKind::ALL
            .iter()
            .position(|k| *k == record.kind)
            .unwrap_or(0);
        head.push_str(&self.measurements[kind_index]);
        let channel = &*record.channel;
        if channel.chars().any(char::is_uppercase) {
            tag(&mut head, "channel", &channel.to_lowercase());
        } else {
            tag(&mut head, "channel", channel);
        }
        tag(&mut head, "device", &record.device);
        if let Some(q) = record.quantity {
            tag(&mut head, "quantity", q.name());
        }
        if has_raw {
            if let Some(u) = self.raw_unit(record) {
                tag(&mut head, "raw_unit", u.symbol());
            }
        }
        if !self.site.is_empty() {
            head.push_str(",site=");
            head.push_str(&self.site);
        }
        tag(&mut head, "stack", &record.stack);
        if let Some(u) = record.unit {
            tag(&mut head, "unit", u.symbol());
        }
        let limit = record
            .quantity
            .and_then(|q| self.facts.limit(&record.stack, q));
        SeriesLine { head, limit }
    }

    /// Appends the line of a record that is not an audit entry, given its series' part.
    fn write_line(
        &self,
        series: &SeriesLine,
        record: &Record,
        raw: Option<f64>,
        ts: i64,
        out: &mut String,
    ) {
        out.push_str(&series.head);
        // Written first because it is always there, so later fields all start with a comma.
        out.push_str(" flag_code=");
        integer(out, flag_code(record.flags.primary()));
        out.push('i');
        float_field(out, "raw", raw);
        float_field(out, "measured", record.measured);
        float_field(out, "corrected", record.corrected);
        float_field(out, "limit", series.limit);
        float_field(out, "rate", record.rate);
        float_field(out, "min", record.min);
        float_field(out, "max", record.max);
        float_field(out, "corrected_min", record.corrected_min);
        float_field(out, "corrected_max", record.corrected_max);
        if let Some(count) = record.count {
            let _ = write!(out, ",count={count}i");
        }
        if let Some(end) = record.end {
            let duration = end.millis().saturating_sub(record.ts.millis());
            let _ = write!(out, ",duration_ms={duration}i");
        }
        if matches!(
            record.kind,
            RecordKind::Gap | RecordKind::Exceedance | RecordKind::Event
        ) {
            let _ = write!(out, ",closed={}i", u8::from(record.end.is_some()));
        }
        if record.revision > 0 {
            let _ = write!(out, ",revision={}i", record.revision);
        }
        if let Some(note) = &record.note {
            out.push_str(",note=\"");
            escape_string(out, note);
            out.push('"');
        }
        out.push(' ');
        integer(out, ts);
        out.push('\n');
    }

    /// An audit entry: `<prefix>_audit` tagged by how, item, site, source and stack, with
    /// the old and new value, file and checksum as string fields (left out when absent) and
    /// `changed=1i`, so every line has a field.
    fn encode_audit(&self, entry: &AuditEntry, stack: &str, ts: i64, out: &mut String) {
        out.push_str(&self.audit);
        tag(out, "how", entry.how.as_str());
        tag(out, "item", &entry.item);
        if !self.site.is_empty() {
            out.push_str(",site=");
            out.push_str(&self.site);
        }
        tag(out, "source", &entry.source);
        tag(out, "stack", stack);
        out.push_str(" changed=1i");
        for (key, value) in [
            ("checksum", &entry.checksum),
            ("file", &entry.file),
            ("new", &entry.new),
            ("old", &entry.old),
        ] {
            if let Some(value) = value {
                let _ = write!(out, ",{key}=\"");
                escape_string(out, value);
                out.push('"');
            }
        }
        let _ = writeln!(out, " {ts}");
    }

    /// Encodes `records` in order. Records that cannot be encoded are returned with their
    /// seq instead, for the dead-letter table. The measurement and tag set of each series is
    /// built once per batch: a backlog is a few series written many times.
    pub fn encode_batch(
        &self,
        records: &[crate::store::Stored],
    ) -> (EncodedBatch, Vec<(u64, EncodeError)>) {
        let mut batch = EncodedBatch {
            text: String::with_capacity(records.len() * 200),
            ends: Vec::with_capacity(records.len()),
        };
        let mut failed = Vec::new();
        let mut lines = SeriesLines::new();
        for stored in records {
            match self.encode_with(&stored.record, &mut lines, &mut batch.text) {
                Ok(()) => batch.ends.push((stored.seq, batch.text.len())),
                Err(e) => failed.push((stored.seq, e)),
            }
        }
        (batch, failed)
    }

    /// The unit of the record's raw value: the channel's wire unit; a derived NOx repeats its
    /// measured value as raw, in the record's unit.
    fn raw_unit(&self, record: &Record) -> Option<Unit> {
        if &*record.channel == DERIVED_NOX_CHANNEL {
            return record.unit;
        }
        self.facts.raw_unit(
            &record.device,
            &record.channel,
            record.quantity,
            record.unit,
        )
    }

    fn timestamp(&self, millis: i64) -> Result<i64, EncodeError> {
        let scaled = match self.precision {
            Precision::Ns => millis.checked_mul(1_000_000),
            Precision::Us => millis.checked_mul(1_000),
            Precision::Ms => Some(millis),
            Precision::S => Some(millis.div_euclid(1_000)),
        };
        scaled.ok_or(EncodeError::TimestampOutOfRange {
            millis,
            precision: self.precision.as_str(),
        })
    }
}

/// The measurement and tag set of a series' lines, up to the space before the fields, and
/// the stack's limit of its pollutant.
struct SeriesLine {
    head: String,
    limit: Option<f64>,
}

/// The series' parts of the lines of one batch (or one record). Keyed by the addresses of the
/// names, so it lives no longer than the records it was built from.
type SeriesLines = HashMap<SeriesIdentity, SeriesLine>;

/// What [`Encoder::series_line`] reads of a record, the names by their addresses
/// ([`NamesAt`]): the batch's records hold the names while the map of a batch lives.
#[derive(PartialEq, Eq, Hash)]
struct SeriesIdentity {
    kind: RecordKind,
    names: NamesAt,
    has_raw: bool,
}

impl SeriesIdentity {
    fn of(record: &Record, has_raw: bool) -> SeriesIdentity {
        SeriesIdentity {
            kind: record.kind,
            names: names_at(record),
            has_raw,
        }
    }
}

/// The flag's rank by severity, the order `Flag` declares: N 0, T 1, S 2, C 3, M 4, D 5, F 6,
/// B 7 (the table in docs/influx-schema.md), so "worse than" is a numeric comparison in a
/// dashboard query or an alert rule.
pub fn flag_code(flag: Flag) -> u8 {
    flag as u8
}

/// Tags with an empty value are invalid line protocol, so they are left out.
fn tag(out: &mut String, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    out.push(',');
    out.push_str(key);
    out.push('=');
    escape_key_or_tag(out, value);
}

/// NaN and infinities have no line-protocol form; the field is left out and the line keeps
/// its flag.
fn float_field(out: &mut String, key: &str, value: Option<f64>) {
    if let Some(v) = value.filter(|v| v.is_finite()) {
        out.push(',');
        out.push_str(key);
        out.push('=');
        float(out, v);
    }
}

/// A finite `v` as `{:?}` writes it: the shortest text that reads back to the same f64 (the
/// closest such text), with an exponent for very large or small values, which line protocol
/// accepts. Ryū (Adams, PLDI 2018) finds the same digits several times faster, except in two
/// places: where it switches to an exponent (`{:?}` outside [1e-4, 1e16), the ryu crate
/// outside [1e-5, 1e16)), and on a tie between two shortest texts equally close to `v`, which
/// ryu breaks to the even digit and `{:?}` upward. Ryu writes the values in [1e-4, 1e16) that
/// cannot tie, `{:?}` the rest; a plant's computed values are nearly all of the first kind.
fn float(out: &mut String, v: f64) {
    if (1e-4..1e16).contains(&v.abs()) && !may_tie(v) {
        out.push_str(ryu::Buffer::new().format_finite(v));
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// Whether two shortest texts of `v` can be equally close to it. A tie puts `v` exactly
/// halfway between two texts of n digits (n <= 17 for an f64), so `v`'s exact decimal value
/// has n + 1 <= 18 significant digits. `v` = m * 2^-k exactly, with m odd, is m * 5^k / 10^k,
/// whose digits are those of m * 5^k (odd times odd, so no trailing zero); integers (k <= 0)
/// are answered true too, which only sends them the slower way.
fn may_tie(v: f64) -> bool {
    const FRACTION_BITS: u32 = 52;
    let bits = v.to_bits();
    let biased = ((bits >> FRACTION_BITS) & 0x7ff) as i32;
    let fraction = bits & ((1 << FRACTION_BITS) - 1);
    let (mantissa, exponent) = match biased {
        0 => (fraction, -1074),
        _ => (fraction | 1 << FRACTION_BITS, biased - 1075),
    };
    if mantissa == 0 {
        return true;
    }
    let zeros = mantissa.trailing_zeros();
    let (odd, exponent) = (mantissa >> zeros, exponent + zeros as i32);
    let Ok(k) = u32::try_from(-exponent) else {
        return true;
    };
    // 5^26 alone has 19 digits.
    k <= 25 && u128::from(odd) * 5u128.pow(k) < 10u128.pow(18)
}

fn integer(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

fn escape_measurement(out: &mut String, text: &str) {
    escape(out, text, &[',', ' ']);
}

/// Tag keys, tag values and field keys escape the same characters.
fn escape_key_or_tag(out: &mut String, text: &str) {
    escape(out, text, &[',', '=', ' ']);
}

fn escape_string(out: &mut String, text: &str) {
    escape(out, text, &['"']);
}

fn escape(out: &mut String, text: &str, special: &[char]) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlagSet, Quantity, Timestamp, Unit};
    use crate::store::{RecordKind, Stored};

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn reading() -> Record {
        Record {
            quantity: Some(Quantity::SO2),
            unit: Some(Unit::MgPerM3),
            raw: Some(12.5),
            measured: Some(35.75),
            corrected: Some(41.0),
            ..Record::new(
                RecordKind::Reading,
                Timestamp::from_millis(T0),
                "unit1".into(),
                "so2-a".into(),
                "so2".into(),
            )
        }
    }

    fn line(encoder: &Encoder, record: &Record) -> String {
        let mut out = String::new();
        encoder
            .encode(record, &mut out)
            .unwrap_or_else(|e| panic!("encode: {e}"));
        out
    }

    #[test]
    fn a_reading_has_sorted_tags_its_values_and_a_millisecond_timestamp() {
        let encoder = Encoder::new("cems", SiteFacts::named("plant-1"), Precision::Ms);
        assert_eq!(
            line(&encoder, &reading()),
            "cems_reading,channel=so2,device=so2-a,quantity=SO2,site=plant-1,stack=unit1,unit=mg/m3 \
             flag_code=0i,raw=12.5,measured=35.75,corrected=41.0 1767225600000\n"
        );
    }

    /// A site whose SO2 analyser reports ppb and whose NOx cemsd computes from NO and NO2.
    fn site_facts() -> SiteFacts {
        let text = r#"
[site]
id = "plant-1"

[[stack]]
id = "unit1"
limits = { preset = "ultra_low" }

[[device]]
id = "so2-a"
profile = "thermo-43i"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:1502"
"#;
        let loaded = crate::config::parse(std::path::Path::new("site.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"));
        SiteFacts::of(&loaded.config)
    }

    #[test]
    fn raw_is_in_the_wire_unit_the_limit_beside_corrected_and_channels_lower_case() {
        let encoder = Encoder::new("cems", site_facts(), Precision::Ms);
        // the 43i reports SO2 in ppb (its profile): raw 12.5 ppb, measured 35.75 mg/m3; ultra-low SO2 35
        assert_eq!(
            line(&encoder, &reading()),
            "cems_reading,channel=so2,device=so2-a,quantity=SO2,raw_unit=ppb,site=plant-1,stack=unit1,unit=mg/m3 \
             flag_code=0i,raw=12.5,measured=35.75,corrected=41.0,limit=35.0 1767225600000\n"
        );
        // NOx computed from NO and NO2: its raw repeats measured, in mg/m3; ultra-low NOx 50
        let nox = Record {
            quantity: Some(Quantity::NOx),
            raw: Some(20.0),
            measured: Some(20.0),
            corrected: Some(22.0),
            channel: DERIVED_NOX_CHANNEL.into(),
            ..reading()
        };
        assert_eq!(
            line(&encoder, &nox),
            "cems_reading,channel=nox,device=so2-a,quantity=NOx,raw_unit=mg/m3,site=plant-1,stack=unit1,unit=mg/m3 \
             flag_code=0i,raw=20.0,measured=20.0,corrected=22.0,limit=50.0 1767225600000\n"
        );
    }

    #[test]
    fn a_flag_change_keeps_the_series_and_a_close_lands_on_the_opening_point() {
        let encoder = Encoder::new("cems", site_facts(), Precision::Ms);
        let series_of =
            |record: &Record| line(&encoder, record).split(' ').next().map(str::to_string);
        let calibrating = Record {
            flags: FlagSet::of(Flag::C),
            ..reading()
        };
        assert_eq!(series_of(&reading()), series_of(&calibrating));
        assert!(line(&encoder, &calibrating).contains(" flag_code=3i,"));

        let open = Record {
            quantity: Some(Quantity::SO2),
            unit: Some(Unit::MgPerM3),
            corrected: Some(48.0),
            count: Some(2),
            ..Record::new(
                RecordKind::Exceedance,
                Timestamp::from_millis(T0),
                "unit1".into(),
                "".into(),
                "".into(),
            )
        };
        let closed = Record {
            end: Some(Timestamp::from_millis(T0 + 7_200_000)),
            ..open.clone()
        };
        let (open_line, closed_line) = (line(&encoder, &open), line(&encoder, &closed));
        assert_eq!(
            open_line,
            "cems_exceedance,quantity=SO2,site=plant-1,stack=unit1,unit=mg/m3 \
             flag_code=0i,corrected=48.0,limit=35.0,count=2i,closed=0i 1767225600000\n"
        );
        assert_eq!(
            closed_line,
            "cems_exceedance,quantity=SO2,site=plant-1,stack=unit1,unit=mg/m3 \
             flag_code=0i,corrected=48.0,limit=35.0,count=2i,duration_ms=7200000i,closed=1i \
             1767225600000\n"
        );
    }

    #[test]
    fn precision_scales_the_millisecond_timestamp() {
        let mut record = reading();
        record.ts = Timestamp::from_millis(T0 + 1_234);
        let ts_of = |precision, record: &Record| {
            let text = line(
                &Encoder::new("cems", SiteFacts::named("p"), precision),
                record,
            );
            text.trim_end()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(ts_of(Precision::Ms, &record), "1767225601234");
        assert_eq!(ts_of(Precision::Us, &record), "1767225601234000");
        assert_eq!(ts_of(Precision::Ns, &record), "1767225601234000000");
        assert_eq!(
            ts_of(Precision::S, &record),
            "1767225601",
            "truncated to the second"
        );

        // Before 1970 seconds round down, not toward zero: -1 ms is in second -1.
        record.ts = Timestamp::from_millis(-1);
        assert_eq!(ts_of(Precision::S, &record), "-1");
    }

    #[test]
    fn a_timestamp_that_overflows_in_nanoseconds_is_an_error_and_writes_nothing() {
        let mut record = reading();
        // i64::MAX ns is 2262-04-11; 9.3e12 ms is past it.
        record.ts = Timestamp::from_millis(9_300_000_000_000);
        let mut out = String::from("kept\n");
        let e =
            Encoder::new("cems", SiteFacts::named("p"), Precision::Ns).encode(&record, &mut out);
        assert_eq!(
            e,
            Err(EncodeError::TimestampOutOfRange {
                millis: 9_300_000_000_000,
                precision: "ns"
            })
        );
        assert_eq!(out, "kept\n");
        assert!(Encoder::new("cems", SiteFacts::named("p"), Precision::Ms)
            .encode(&record, &mut out)
            .is_ok());
    }

    #[test]
    fn nan_and_infinite_values_are_left_out_but_the_flag_stays() {
        let mut record = reading();
        record.raw = Some(f64::NAN);
        record.measured = Some(f64::INFINITY);
        record.corrected = Some(f64::NEG_INFINITY);
        record.flags = FlagSet::of(Flag::B);
        assert_eq!(
            line(
                &Encoder::new("cems", SiteFacts::named("p"), Precision::Ms),
                &record
            ),
            "cems_reading,channel=so2,device=so2-a,quantity=SO2,site=p,stack=unit1,unit=mg/m3 \
             flag_code=7i 1767225600000\n"
        );
    }

    #[test]
    fn aggregates_gaps_and_events_carry_their_own_fields() {
        let encoder = Encoder::new("cems", SiteFacts::named("p"), Precision::Ms);
        let hour = Record {
            kind: RecordKind::Hour,
            end: Some(Timestamp::from_millis(T0 + 3_600_000)),
            flags: FlagSet::of(Flag::T).with(Flag::C),
            min: Some(-0.5),
            max: Some(1e21),
            rate: Some(1.5e-7),
            count: Some(45),
            raw: None,
            corrected: None,
            ..reading()
        };
        // Primary flag of {T, C} is C (rank 3); the hour lasts 3 600 000 ms.
        assert_eq!(
            line(&encoder, &hour),
            "cems_hour,channel=so2,device=so2-a,quantity=SO2,site=p,stack=unit1,unit=mg/m3 \
             flag_code=3i,measured=35.75,rate=1.5e-7,min=-0.5,max=1e21,count=45i,duration_ms=3600000i \
             1767225600000\n"
        );
        // its second version, after late readings: same point, one more field
        let revised = Record {
            revision: 1,
            ..hour.clone()
        };
        assert_eq!(
            line(&encoder, &revised),
            "cems_hour,channel=so2,device=so2-a,quantity=SO2,site=p,stack=unit1,unit=mg/m3 \
             flag_code=3i,measured=35.75,rate=1.5e-7,min=-0.5,max=1e21,count=45i,duration_ms=3600000i,\
             revision=1i 1767225600000\n"
        );
        let gap = Record {
            end: Some(Timestamp::from_millis(T0 + 90_000)),
            note: Some("no answer".into()),
            ..Record::new(
                RecordKind::Gap,
                Timestamp::from_millis(T0),
                "".into(),
                "so2-a".into(),
                "so2".into(),
            )
        };
        // Empty stack and missing quantity/unit leave their tags out.
        assert_eq!(
            line(&encoder, &gap),
            "cems_gap,channel=so2,device=so2-a,site=p flag_code=0i,duration_ms=90000i,closed=1i,\
             note=\"no answer\" 1767225600000\n"
        );
        for (kind, measurement) in [
            (RecordKind::Minute, "cems_minute,"),
            (RecordKind::Day, "cems_day,"),
            (RecordKind::Exceedance, "cems_exceedance,"),
            (RecordKind::Event, "cems_event,"),
        ] {
            let record = Record { kind, ..reading() };
            assert!(line(&encoder, &record).starts_with(measurement), "{kind}");
        }
    }

    #[test]
    fn an_audit_entry_is_a_line_of_its_own_measurement() {
        let encoder = Encoder::new("cems", site_facts(), Precision::Ms);
        let entry = crate::store::AuditEntry {
            ts: 1_767_240_000_000,
            source: "site".to_string(),
            how: crate::store::AuditHow::Reload,
            item: "stack.unit1.reference_o2".to_string(),
            old: Some("6".to_string()),
            new: Some("8".to_string()),
            file: Some("site.toml".to_string()),
            checksum: None,
        };
        assert_eq!(
            line(&encoder, &entry.to_record("unit1")),
            "cems_audit,how=reload,item=stack.unit1.reference_o2,site=plant-1,source=site,stack=unit1 \
             changed=1i,file=\"site.toml\",new=\"8\",old=\"6\" 1767240000000\n"
        );
    }

    #[test]
    fn tag_values_escape_comma_equals_space_backslash_and_line_breaks() {
        let record = Record::new(
            RecordKind::Event,
            Timestamp::from_millis(0),
            "stack 1,a=b".into(),
            "dev\\".into(),
            "ch\nx".into(),
        );
        assert_eq!(
            line(
                &Encoder::new("cems", SiteFacts::named("site one"), Precision::Ms),
                &record
            ),
            "cems_event,channel=ch\\nx,device=dev\\\\,site=site\\ one,stack=stack\\ 1\\,a\\=b \
             flag_code=0i,closed=0i 0\n"
        );
    }

    #[test]
    fn measurement_escapes_comma_and_space_but_not_equals() {
        let record = Record::new(
            RecordKind::Day,
            Timestamp::from_millis(0),
            "s".into(),
            "d".into(),
            "c".into(),
        );
        let text = line(
            &Encoder::new("my plant,x=1", SiteFacts::named("p"), Precision::Ms),
            &record,
        );
        assert!(
            text.starts_with("my\\ plant\\,x=1_day,channel=c,"),
            "{text}"
        );
    }

    #[test]
    fn string_fields_escape_quotes_and_backslashes_only() {
        let mut record = reading();
        record.kind = RecordKind::Event;
        record.raw = None;
        record.measured = None;
        record.corrected = None;
        record.note = Some("say \"hi\", a=b c:\\x\r\n".into());
        let text = line(
            &Encoder::new("cems", SiteFacts::named("p"), Precision::Ms),
            &record,
        );
        assert!(
            text.ends_with(",note=\"say \\\"hi\\\", a=b c:\\\\x\\r\\n\" 1767225600000\n"),
            "{text}"
        );
    }

    #[test]
    fn the_fixed_keys_need_no_escaping() {
        let keys = [
            "channel",
            "device",
            "quantity",
            "site",
            "stack",
            "unit",
            "flag_code",
            "raw",
            "measured",
            "corrected",
            "rate",
            "min",
            "max",
            "count",
            "duration_ms",
            "note",
            "raw_unit",
            "limit",
            "closed",
            "revision",
            "corrected_min",
            "corrected_max",
        ];
        for key in keys {
            let mut escaped = String::new();
            escape_key_or_tag(&mut escaped, key);
            assert_eq!(escaped, key);
        }
        // Quantity names and unit symbols go out verbatim as tag values.
        for q in Quantity::ALL {
            let mut escaped = String::new();
            escape_key_or_tag(&mut escaped, q.name());
            assert_eq!(escaped, q.name());
        }
        for u in Unit::ALL {
            let mut escaped = String::new();
            escape_key_or_tag(&mut escaped, u.symbol());
            assert_eq!(escaped, u.symbol());
        }
    }

    /// The fast path must write exactly what `{:?}` writes, around both of its switch points
    /// and for values of every magnitude and of the plant's kind (decimals of a few digits).
    #[test]
    fn numbers_are_written_as_core_fmt_writes_them() {
        let mut random = crate::model::random::SplitMix64(24);
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            1e-4,
            9.999_999_999_999_999e-5,
            1e-5,
            1e15,
            1e16,
            9.999e15,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            123_456.789,
            -41.0,
        ];
        for _ in 0..100_000 {
            let bits = random.next_u64();
            values.push(f64::from_bits(bits));
            values.push((bits % 10_000_000) as f64 / 1000.0);
            values.push((bits % 997) as f64 * 0.1 * 3.1);
            // exact binary fractions of every magnitude: where ties between two shortest
            // texts happen (0.5 + 2^-17 is 0.50000762939453125, halfway between two texts)
            let k = (bits % 64) as i32;
            let m = (bits >> 11) >> (bits % 53);
            values.push(m as f64 * 2f64.powi(-k));
        }
        values.push(0.5 + 2f64.powi(-17));
        values.push(2f64.powi(46) + 0.125);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            let mut fast = String::new();
            float(&mut fast, v);
            assert_eq!(fast, format!("{v:?}"), "bits {:#x}", v.to_bits());
        }
        let mut text = String::new();
        integer(&mut text, i64::MIN);
        integer(&mut text, 7u8);
        assert_eq!(text, format!("{}7", i64::MIN));
    }

    /// Series parts are built once per batch; lines of series that differ in any tag or in
    /// having raw keep their own.
    #[test]
    fn a_batch_writes_each_line_as_encode_writes_it_alone() {
        let encoder = Encoder::new("cems", site_facts(), Precision::Ms);
        let mut records = Vec::new();
        for (n, channel) in ["so2", "SO2", "nox", "so2"].into_iter().enumerate() {
            let mut with_raw = reading();
            with_raw.channel = channel.into();
            with_raw.ts = Timestamp::from_millis(T0 + n as i64);
            let mut without_raw = with_raw.clone();
            without_raw.raw = None;
            let mut other_stack = with_raw.clone();
            other_stack.stack = "unit2".into();
            let mut minute = with_raw.clone();
            minute.kind = RecordKind::Minute;
            records.extend([with_raw, without_raw, other_stack, minute]);
        }
        let stored: Vec<Stored> = records
            .iter()
            .zip(1..)
            .map(|(record, seq)| Stored {
                seq,
                record: record.clone(),
            })
            .collect();
        let (batch, failed) = encoder.encode_batch(&stored);
        assert!(failed.is_empty());
        let alone: String = records.iter().map(|r| line(&encoder, r)).collect();
        assert_eq!(batch.text(0..batch.len()), alone);
        assert!(alone.contains(",raw_unit=ppb,") && alone.contains("stack=unit2"));
    }

    #[test]
    fn a_batch_keeps_seqs_and_slices_lines_and_reports_what_it_could_not_encode() {
        let encoder = Encoder::new("cems", SiteFacts::named("p"), Precision::Ns);
        let mut far = reading();
        far.ts = Timestamp::from_millis(i64::MAX);
        let records = vec![
            Stored {
                seq: 4,
                record: Record::new(
                    RecordKind::Gap,
                    Timestamp::from_millis(1),
                    "".into(),
                    "a".into(),
                    "x".into(),
                ),
            },
            Stored {
                seq: 5,
                record: far,
            },
            Stored {
                seq: 6,
                record: Record::new(
                    RecordKind::Gap,
                    Timestamp::from_millis(2),
                    "".into(),
                    "b".into(),
                    "y".into(),
                ),
            },
        ];
        let (batch, failed) = encoder.encode_batch(&records);
        assert_eq!(batch.len(), 2);
        assert_eq!((batch.seq(0), batch.seq(1)), (4, 6));
        let first = "cems_gap,channel=x,device=a,site=p flag_code=0i,closed=0i 1000000\n";
        let second = "cems_gap,channel=y,device=b,site=p flag_code=0i,closed=0i 2000000\n";
        assert_eq!(batch.text(0..1), first);
        assert_eq!(batch.text(1..2), second);
        assert_eq!(batch.text(0..2), format!("{first}{second}"));
        assert_eq!(batch.text(1..1), "");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 5);
    }
}
