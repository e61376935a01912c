//! CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF), the
//! checksum named in FORMAT.md §2 and §4. Slicing-by-8 with tables built at compile time; with
//! the `small` feature, one 64-byte table and two steps of four bits a byte (8 KiB smaller,
//! slower).

const POLY: u32 = 0x82F6_3B78;

/// `c` after `steps` one-bit steps of the reflected polynomial: a table entry for the value `c`
/// of `steps` bits.
const fn shifted(mut c: u32, steps: u32) -> u32 {
    let mut k = 0;
    while k < steps {
        c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        k += 1;
    }
    c
}

#[cfg(not(feature = "small"))]
const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        t[0][i] = shifted(i as u32, 8);
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

#[cfg(not(feature = "small"))]
static TABLES: [[u32; 256]; 8] = make_tables();
/// The CRC of each four-bit value, for the `small` build's half-byte steps.
#[cfg(feature = "small")]
static NIBBLES: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = shifted(i as u32, 4);
        i += 1;
    }
    t
};

/// A running CRC-32C: feed byte slices with [`Crc32c::update`], read with [`Crc32c::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    pub const fn new() -> Self {
        Crc32c(0xFFFF_FFFF)
    }

    #[cfg(feature = "small")]
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c ^= b as u32;
            c = (c >> 4) ^ NIBBLES[(c & 15) as usize];
            c = (c >> 4) ^ NIBBLES[(c & 15) as usize];
        }
        self.0 = c;
    }

    #[cfg(not(feature = "small"))]
    pub fn update(&mut self, data: &[u8]) {
        // The `simd` feature: SSE 4.2's `crc32` instruction where the CPU has it.
        #[cfg(feature = "simd")]
        if let Some(c) = pcll_rans_simd::crc32c_update(self.0, data) {
            self.0 = c;
            return;
        }
        self.0 = update_tables(self.0, data);
    }

    pub const fn finish(&self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// Slicing-by-8 over `data` from the running state `c`.
#[cfg(not(feature = "small"))]
fn update_tables(c: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut c = c;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][((hi >> 8) & 0xFF) as usize]
            ^ t[1][((hi >> 16) & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ t[0][((c ^ b as u32) & 0xFF) as usize];
    }
    c
}

/// CRC-32C of one slice.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(data);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 B.4 and the common check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    /// With the `simd` feature, the hardware paths (the `crc32` loops, and the carry-less
    /// folding on the AVX-512 level) and the tables agree on every length.
    #[cfg(all(feature = "simd", not(feature = "small")))]
    #[test]
    fn hardware_and_tables_agree() {
        pcll_rans_simd::for_each_kernel(hardware_and_tables_agree_at);
    }

    #[cfg(all(feature = "simd", not(feature = "small")))]
    fn hardware_and_tables_agree_at() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 131 + 7) as u8);
        for len in 0..data.len() {
            let hw = pcll_rans_simd::crc32c_update(0xFFFF_FFFF, &data[..len]);
            if let Some(hw) = hw {
                assert_eq!(hw, update_tables(0xFFFF_FFFF, &data[..len]), "{len} bytes");
            }
        }
        // Past the three-way blocks (3 × 256 and 3 × 8192 bytes), from any running state.
        let long: alloc::vec::Vec<u8> = (0..80_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut lens = alloc::vec![767, 768, 769, 1535, 1536, 24_575, 24_576, 24_577];
        lens.extend([25_343, 25_344, 49_152 + 775, 80_000]);
        // Folding: one group of four 64-byte blocks and more, 64-byte and 16-byte blocks after.
        lens.extend([511, 512, 513, 527, 576, 639, 704, 1024 + 176 + 9]);
        for (k, &len) in lens.iter().enumerate() {
            let start = 0x1234_5678u32.wrapping_mul(k as u32 + 1);
            let hw = pcll_rans_simd::crc32c_update(start, &long[..len]);
            if let Some(hw) = hw {
                assert_eq!(hw, update_tables(start, &long[..len]), "{len} bytes");
            }
        }
    }

    #[test]
    fn split_updates_agree() {
        let data: [u8; 100] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for cut in 0..100 {
            let mut c = Crc32c::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finish(), crc32c(&data));
        }
    }
}
