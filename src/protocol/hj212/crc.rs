//! The HJ 212 checksum: a CRC-16 variant that shifts the register right by 8 before mixing in
//! each byte. It is NOT CRC-16/MODBUS, although both use the 0xA001 polynomial; a peer that
//! computes MODBUS CRCs gets every packet rejected.

use crate::protocol::CRC_A001 as TABLE;

/// CRC of a data segment (the bytes between the 4-digit length and the CRC field).
pub fn crc16_hj212(data: &[u8]) -> u16 {
    // `(crc >> 8) ^ byte` is below 256, so the eight shift-and-mix rounds of a byte are one
    // table entry, and only the register's high byte carries over to the next byte. The
    // rounds are linear, so four bytes at a time are four independent lookups.
    let Some((&last, init)) = data.split_last() else {
        return 0xFFFF;
    };
    let mut chunks = init.chunks_exact(4);
    let mut high: u8 = 0xFF;
    for c in &mut chunks {
        high = AHEAD[3][usize::from(high ^ c[0])]
            ^ AHEAD[2][usize::from(c[1])]
            ^ AHEAD[1][usize::from(c[2])]
            ^ AHEAD[0][usize::from(c[3])];
    }
    for &byte in chunks.remainder() {
        high = AHEAD[0][usize::from(high ^ byte)];
    }
    TABLE[usize::from(high ^ last)]
}

/// `AHEAD[n][x]`: the register's high byte after the rounds of x and then n zero bytes; every
/// packet in and out is checked, and the lookups of four bytes do not wait on each other.
const AHEAD: [[u8; 256]; 4] = {
    let mut ahead = [[0u8; 256]; 4];
    let mut index = 0;
    while index < 256 {
        let mut high = (TABLE[index] >> 8) as u8;
        let mut n = 0;
        while n < 4 {
            ahead[n][index] = high;
            high = (TABLE[high as usize] >> 8) as u8;
            n += 1;
        }
        index += 1;
    }
    ahead
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_example_gives_1c80() {
        // HJ 212-2017 example packet, data segment only.
        let data = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";
        assert_eq!(data.len(), 101);
        assert_eq!(crc16_hj212(data), 0x1C80);
    }

    #[test]
    fn empty_input_leaves_the_initial_register() {
        assert_eq!(crc16_hj212(b""), 0xFFFF);
    }

    #[test]
    fn single_byte_by_hand() {
        // crc = 0xFFFF >> 8 ^ 0x41 = 0x00BE; eight steps:
        // BE even -> 5F; 5F odd -> 2F^A001=A02E; even -> 5017; odd -> 280B^A001=880A;
        // even -> 4405; odd -> 2202^A001=8203; odd -> 4101^A001=E100; even -> 7080.
        assert_eq!(crc16_hj212(b"A"), 0x7080);
    }

    #[test]
    fn differs_from_crc16_modbus() {
        // CRC-16/MODBUS of the standard's data segment is 0x0759 (standards.md); ours is not.
        let data = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";
        assert_ne!(crc16_hj212(data), 0x0759);
    }

    /// The table gives what shifting bit by bit gives, for every byte value after every
    /// register high byte.
    #[test]
    fn table_matches_bit_by_bit() {
        fn bitwise(data: &[u8]) -> u16 {
            let mut crc: u16 = 0xFFFF;
            for &byte in data {
                crc = (crc >> 8) ^ u16::from(byte);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0xA001
                    } else {
                        crc >> 1
                    };
                }
            }
            crc
        }
        // Every length up to 40, so each remainder after the four-byte steps is covered.
        let mut state: u32 = 1;
        let noise: Vec<u8> = (0..40)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16) as u8
            })
            .collect();
        for len in 0..=noise.len() {
            let data = &noise[..len];
            assert_eq!(crc16_hj212(data), bitwise(data), "length {len}");
        }
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                let data = [first, second];
                assert_eq!(crc16_hj212(&data), bitwise(&data), "bytes {data:02X?}");
            }
        }
    }
}
