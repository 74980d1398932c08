//! Replayed records as text: InfluxDB line protocol (the forwarder's own encoding, so a replay
//! can be compared with what a bucket holds) or CSV. Numbers print in Rust's shortest exact
//! form, so equal runs give equal bytes.

use std::fmt::Write as _;
use std::io::Write;

use crate::config::influx::Precision;
use crate::sink::influx::{Encoder, SiteFacts};
use crate::store::{Record, RecordKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// InfluxDB line protocol, millisecond timestamps.
    Lp,
    Csv,
}

const CSV_HEADER: &str =
    "kind,ts,end,stack,device,channel,quantity,unit,flags,raw,measured,corrected,rate,min,max,count,note\n";

pub struct RecordWriter<W: Write> {
    out: W,
    format: OutputFormat,
    /// Aggregates, gaps and exceedances too, not only readings.
    all: bool,
    encoder: Encoder,
    started: bool,
    line: String,
}

impl<W: Write> RecordWriter<W> {
    /// `facts` (site, limits, raw units) go into line-protocol points as the InfluxDB
    /// forwarder puts them.
    pub fn new(out: W, format: OutputFormat, all: bool, facts: SiteFacts) -> RecordWriter<W> {
        RecordWriter {
            out,
            format,
            all,
            encoder: Encoder::new("cems", facts, Precision::Ms),
            started: false,
            line: String::new(),
        }
    }

    pub fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        if !self.started && self.format == OutputFormat::Csv {
            self.out.write_all(CSV_HEADER.as_bytes())?;
        }
        self.started = true;
        for record in records {
            if !self.all && record.kind != RecordKind::Reading {
                continue;
            }
            self.line.clear();
            match self.format {
                OutputFormat::Lp => {
                    // a millisecond timestamp always fits; a record that did not would be skipped
                    let _ = self.encoder.encode(record, &mut self.line);
                }
                OutputFormat::Csv => csv_line(record, &mut self.line),
            }
            self.out.write_all(self.line.as_bytes())?;
        }
        Ok(())
    }

    pub fn into_inner(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn csv_line(r: &Record, out: &mut String) {
    let number = |v: Option<f64>| match v {
        Some(v) if v.is_finite() => v.to_string(),
        _ => String::new(),
    };
    let flags: String = r.flags.iter().map(|f| f.code()).collect();
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        r.kind.as_str(),
        r.ts,
        r.end.map(|e| e.to_string()).unwrap_or_default(),
        field(&r.stack),
        field(&r.device),
        field(&r.channel),
        r.quantity.map(|q| q.name()).unwrap_or(""),
        r.unit.map(|u| u.symbol()).unwrap_or(""),
        flags,
        number(r.raw),
        number(r.measured),
        number(r.corrected),
        number(r.rate),
        number(r.min),
        number(r.max),
        r.count.map(|c| c.to_string()).unwrap_or_default(),
        field(r.note.as_deref().unwrap_or("")),
    );
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
