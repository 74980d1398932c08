//! Importers for the serial logs technicians actually send: terminal and sniffer text, debug
//! output of Modbus tools, raw byte dumps. Each becomes the same list of captured frames as
//! cemsd's own pcapng captures, so a replay or a conversion treats them all alike.
//!
//! A log is read line by line; a line that cannot be read is reported with its number and
//! skipped. Only a log with no readable frame at all is an error.

mod libmodbus;
mod modbus_poll;
mod raw;
mod socat;
mod sscom;
mod text;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{FixedOffset, NaiveDate};

use super::{CaptureError, CaptureReader, CapturedFrame};

pub use raw::find_frames;

/// Where a log came from, which decides how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// cemsd's pcapng, or classic pcap with link type USER0.
    Pcap,
    /// `socat -x -v` (or `-x`) between two ports.
    Socat,
    /// SSCOM's receive window saved to a file (UTF-8 or GBK).
    Sscom,
    /// libmodbus `modbus_set_debug` output, as mbpoll and other libmodbus tools print it.
    Libmodbus,
    /// Modbus Poll's "Communication traffic" window.
    ModbusPoll,
    /// Bytes as they came off the line, with no boundaries and no times.
    Raw,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Pcap,
        Format::Socat,
        Format::Sscom,
        Format::Libmodbus,
        Format::ModbusPoll,
        Format::Raw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Socat => "socat",
            Format::Sscom => "sscom",
            Format::Libmodbus => "libmodbus",
            Format::ModbusPoll => "modbus-poll",
            Format::Raw => "raw",
        }
    }

    /// The log carries no times: they are made up from [`ImportOptions::start_us`].
    pub fn is_untimed(self) -> bool {
        matches!(self, Format::Libmodbus | Format::ModbusPoll | Format::Raw)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown log format {s:?}: one of {}", names.join(", "))
            })
    }
}

/// What the log itself cannot say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// The local date of logs that print the time of day only (SSCOM).
    pub date: Option<NaiveDate>,
    /// The offset of the local times the log prints (socat, SSCOM): the site's.
    pub utc_offset: FixedOffset,
    /// For logs without times: the first request is put here (µs since the epoch, UTC).
    pub start_us: i64,
}

/// A line that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based; for a raw stream, the byte offset instead.
    pub line: usize,
    pub reason: String,
}

/// The frames of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub format: Format,
    pub frames: Vec<CapturedFrame>,
    pub skipped: Vec<Skipped>,
    /// Times were made up (see [`text::UntimedClock`]): request n at start + n s, its reply
    /// 10 ms later. Order is real, spacing is not.
    pub synthesized_times: bool,
    /// A capture file whose tail was damaged: the frames before it are kept.
    pub damage: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("cannot tell the log format\n  help: pass --format (one of pcap, socat, sscom, libmodbus, modbus-poll, raw)")]
    UnknownFormat,
    #[error("an {0} log prints the time of day only\n  help: pass --date YYYY-MM-DD (the local date of its first line)")]
    NeedsDate(Format),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("no frame could be read from this {format} log ({} lines skipped{})", skipped.len(), first_reason(skipped))]
    NothingReadable {
        format: Format,
        skipped: Vec<Skipped>,
    },
}

fn first_reason(skipped: &[Skipped]) -> String {
    skipped
        .first()
        .map(|s| format!("; first at line {}: {}", s.line, s.reason))
        .unwrap_or_default()
}

const PCAPNG_MAGIC: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];
/// Classic pcap, both byte orders, micro- and nanosecond variants.
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xD4, 0xC3, 0xB2, 0xA1],
    [0xA1, 0xB2, 0xC3, 0xD4],
    [0x4D, 0x3C, 0xB2, 0xA1],
    [0xA1, 0xB2, 0x3C, 0x4D],
];

/// Lines looked at to tell a text format.
const DETECT_LINES: usize = 200;

/// The format of `bytes`, from their content: capture magic, then whichever text format
/// recognises the most of the first lines, else raw bytes if they are not text.
pub fn detect(bytes: &[u8]) -> Option<Format> {
    if let Some(magic) = bytes.get(..4) {
        if magic == PCAPNG_MAGIC || PCAP_MAGICS.iter().any(|m| m == magic) {
            return Some(Format::Pcap);
        }
    }
    let mut votes = [0usize; 4];
    for line in text::lines(bytes).take(DETECT_LINES) {
        let line = line.bytes;
        if socat::is_header(line) {
            votes[0] += 1;
        }
        if sscom::is_frame_line(line) {
            votes[1] += 1;
        }
        if libmodbus::is_frame_line(line) {
            votes[2] += 1;
        }
        if modbus_poll::is_frame_line(line) {
            votes[3] += 1;
        }
    }
    let formats = [
        Format::Socat,
        Format::Sscom,
        Format::Libmodbus,
        Format::ModbusPoll,
    ];
    let best = votes
        .iter()
        .enumerate()
        .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))
        .filter(|(_, v)| **v > 0)
        .map(|(i, _)| formats[i]);
    best.or_else(|| (!bytes.is_empty() && !text::looks_like_text(bytes)).then_some(Format::Raw))
}

/// Reads `bytes` as `format` (detected when `None`).
pub fn import(
    bytes: &[u8],
    format: Option<Format>,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let format = format
        .or_else(|| detect(bytes))
        .ok_or(ImportError::UnknownFormat)?;
    let mut imported = Imported {
        format,
        frames: Vec::new(),
        skipped: Vec::new(),
        synthesized_times: format.is_untimed(),
        damage: None,
    };
    match format {
        Format::Pcap => {
            for item in CaptureReader::new(bytes)? {
                match item {
                    Ok(frame) => imported.frames.push(frame),
                    Err(error) => imported.damage = Some(error.to_string()),
                }
            }
        }
        Format::Socat => socat::read(bytes, options, &mut imported),
        Format::Sscom => {
            let date = options.date.ok_or(ImportError::NeedsDate(format))?;
            sscom::read(bytes, date, options.utc_offset, &mut imported);
        }
        Format::Libmodbus => libmodbus::read(bytes, options.start_us, &mut imported),
        Format::ModbusPoll => modbus_poll::read(bytes, options.start_us, &mut imported),
        Format::Raw => raw::read(bytes, options.start_us, &mut imported),
    }
    if imported.frames.is_empty() && (format != Format::Pcap || imported.damage.is_some()) {
        return Err(ImportError::NothingReadable {
            format,
            skipped: imported.skipped,
        });
    }
    Ok(imported)
}

/// Reads the log at `path`.
pub fn import_file(
    path: &Path,
    format: Option<Format>,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io(path.to_path_buf(), e))?;
    import(&bytes, format, options)
}
