//! What can go wrong reading or writing a packet, precise enough for a technician to find the
//! offending byte in a captured line.

use std::fmt;

/// A packet that could not be read, with the byte offset of the problem in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    /// Byte offset in the input given to `decode`, or in the stream fed to a `Framer`.
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The packet does not start with `##`.
    BadHeader,
    /// The 4 characters after `##` are not a decimal length.
    BadLengthDigits,
    /// The declared data-segment length is over the limit (1024 in the standard).
    TooLong {
        declared: usize,
        max: usize,
    },
    /// The declared length differs from the bytes between the length field and the CRC.
    BadLength {
        declared: usize,
        actual: usize,
    },
    /// The input ends inside a packet: fewer bytes follow the header than its length field
    /// and the CRC need, and what there is does not end like a packet.
    Truncated {
        declared: usize,
        received: usize,
    },
    /// The packet ends with its data segment (`…&&`) and no CRC after it.
    MissingCrc,
    /// Bytes outside any packet: no `##` header starts them.
    NotAPacket {
        len: usize,
    },
    /// The last 4 characters are not hexadecimal digits.
    BadCrcDigits,
    BadCrc {
        declared: u16,
        computed: u16,
    },
    /// The command parameters are not wrapped as `CP=&&…&&`.
    MissingCpDelimiter,
    /// CN is not a command code (4 decimal digits).
    UnknownCommand(String),
    /// A header field the standard requires (ST, CN) is absent.
    MissingField(&'static str),
    BadField {
        field: String,
        reason: String,
    },
}

impl DecodeError {
    pub(crate) fn at(position: usize, kind: DecodeErrorKind) -> Self {
        DecodeError { kind, position }
    }

    pub(crate) fn bad_field(
        position: usize,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        DecodeError::at(
            position,
            DecodeErrorKind::BadField {
                field: field.into(),
                reason: reason.into(),
            },
        )
    }

    /// The input around the error with a caret under the offending byte, for a terminal.
    /// Non-printable bytes show as `.` so the caret stays aligned.
    pub fn point_at(&self, input: &[u8]) -> String {
        const CONTEXT: usize = 32;
        let position = self.position.min(input.len());
        let start = position.saturating_sub(CONTEXT);
        let end = (position + CONTEXT).min(input.len());
        // Passwords masked; the caret follows the masked text before it.
        let before = crate::protocol::redact::mask_passwords(&input[start..position]).len();
        let shown: String = crate::protocol::redact::mask_passwords(&input[start..end])
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        let ellipsis = if start > 0 { "…" } else { "" };
        let pad = ellipsis.chars().count() + before;
        format!("{ellipsis}{shown}\n{:pad$}^ {self}", "")
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.position, self.kind)
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::BadHeader => write!(f, "expected the packet header `##`"),
            DecodeErrorKind::BadLengthDigits => {
                write!(
                    f,
                    "expected 4 decimal digits of data-segment length after `##`"
                )
            }
            DecodeErrorKind::TooLong { declared, max } => write!(
                f,
                "data segment declared as {declared} bytes, over the limit of {max}: \
                 the sender must split it (PNUM/PNO)"
            ),
            DecodeErrorKind::BadLength { declared, actual } => write!(
                f,
                "wrong length field: it says {declared:04} bytes but the data segment has \
                 {actual}"
            ),
            DecodeErrorKind::Truncated { declared, received } => write!(
                f,
                "the input ends {received} bytes into a packet whose length field says \
                 {declared:04}: the packet is cut short ({declared} bytes of data and 4 CRC \
                 digits expected)"
            ),
            DecodeErrorKind::MissingCrc => write!(
                f,
                "the packet ends after its data segment (`&&`) without the 4 hexadecimal CRC \
                 digits"
            ),
            DecodeErrorKind::NotAPacket { len } => write!(
                f,
                "{len} byte{} that {} not an HJ 212 packet: no `##` header",
                if *len == 1 { "" } else { "s" },
                if *len == 1 { "is" } else { "are" }
            ),
            DecodeErrorKind::BadCrcDigits => {
                write!(
                    f,
                    "expected 4 hexadecimal CRC digits at the end of the packet"
                )
            }
            DecodeErrorKind::BadCrc { declared, computed } => write!(
                f,
                "CRC mismatch: packet says {declared:04X}, data segment gives {computed:04X}"
            ),
            DecodeErrorKind::MissingCpDelimiter => {
                write!(f, "expected the command parameters as `CP=&&…&&`")
            }
            DecodeErrorKind::UnknownCommand(cn) => {
                write!(f, "CN={cn:?} is not a command code (4 decimal digits)")
            }
            DecodeErrorKind::MissingField(name) => {
                write!(f, "required field {name} is missing before CP")
            }
            DecodeErrorKind::BadField { field, reason } => write!(f, "field {field}: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A packet the encoder refuses to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A value would break the framing or violates the standard's format for its field.
    InvalidValue {
        field: String,
        reason: String,
    },
    /// Every HJ 212-2017 packet identifies its data logger.
    MissingMn,
    /// PNUM, PNO and the split bit of Flag disagree.
    InconsistentSplit(&'static str),
    /// A CP group without fields would vanish on the wire.
    EmptyGroup {
        index: usize,
    },
    TooLong {
        len: usize,
        max: usize,
    },
    CannotSplit(String),
}

impl EncodeError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        EncodeError::InvalidValue {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InvalidValue { field, reason } => write!(f, "field {field}: {reason}"),
            EncodeError::MissingMn => write!(f, "MN (data logger id) is required"),
            EncodeError::InconsistentSplit(why) => write!(f, "split packet fields: {why}"),
            EncodeError::EmptyGroup { index } => {
                write!(f, "CP group {index} has no fields")
            }
            EncodeError::TooLong { len, max } => write!(
                f,
                "data segment is {len} bytes, over the {max} one packet may carry: \
                 split it into PNUM/PNO packets with hj212::split"
            ),
            EncodeError::CannotSplit(why) => write!(f, "cannot split packet: {why}"),
        }
    }
}

impl std::error::Error for EncodeError {}
