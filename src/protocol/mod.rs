//! The codecs of the wire protocols; they depend on the model and profiles only.

pub mod hj212;
pub mod modbus;
pub mod redact;

/// The eight rounds of shifting right and mixing in the reflected polynomial 0xA001, for each
/// starting value 0..=255: the table behind both CRC-16/MODBUS and the HJ 212 checksum, which
/// differ in how a byte meets the register.
pub(crate) const CRC_A001: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u16;
        let mut round = 0;
        while round < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            round += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};
