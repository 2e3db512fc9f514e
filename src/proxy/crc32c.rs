//! CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as the PROXY v2 CRC32C TLV uses it.
//! A table-driven byte-at-a-time loop: headers are small and checked once per connection.

const POLYNOMIAL: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLYNOMIAL } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The CRC32C of `bytes` with the bytes in `hole` taken as zeros.
pub fn checksum_with_hole(bytes: &[u8], hole: std::ops::Range<usize>) -> u32 {
    let mut crc = !0u32;
    for (at, &byte) in bytes.iter().enumerate() {
        let byte = if hole.contains(&at) { 0 } else { byte };
        crc = TABLE[((crc ^ byte as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}
