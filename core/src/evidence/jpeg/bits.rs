//! The entropy-coded segment as a stream of bits, and Huffman tables.
//!
//! The reader removes byte stuffing (`FF 00`) as it goes and stops at the
//! first marker: past it, it reads zero bits, as libjpeg does, so a cut-off
//! scan decodes to flat blocks instead of running away. Every scan does a
//! fixed amount of work per block whatever the bytes say.

use super::Corrupt;

/// Bits of the fast lookup: codes up to this long decode with one probe.
const LOOKUP: u32 = 9;

/// One Huffman table (ITU T.81 Annex C), with a one-probe lookup for short
/// codes and the canonical `maxcode` walk for the rest.
#[derive(Debug, Clone)]
pub(super) struct Huffman {
    /// Indexed by the next `LOOKUP` bits: code length << 8 | symbol; 0 if the
    /// code is longer.
    fast: Vec<u16>,
    /// Indexed the same way, for AC tables: a code and its value bits that
    /// fit in `LOOKUP` bits together, decoded in one probe (value << 16 |
    /// run << 8 | bits used); 0 where the slow way must be taken.
    fast_ac: Vec<i32>,
    /// Per length 1..=16: the largest code of that length, or -1.
    maxcode: [i32; 18],
    /// Per length: index into `values` of its first code, minus that code.
    offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    /// Builds a table from a DHT segment's 16 counts and its symbols.
    pub(super) fn new(counts: &[u8; 16], values: &[u8]) -> Result<Huffman, Corrupt> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || total != values.len() {
            return Err(Corrupt("Huffman table has the wrong number of symbols"));
        }
        let mut fast = vec![0u16; 1 << LOOKUP];
        let mut maxcode = [-1i32; 18];
        let mut offset = [0i32; 17];
        let mut code: u32 = 0;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = u32::from(counts[len as usize - 1]);
            offset[len as usize] = k as i32 - code as i32;
            if n > 0 {
                for _ in 0..n {
                    // The codes of a length may not overflow it.
                    if code >= 1 << len {
                        return Err(Corrupt("Huffman table has too many codes"));
                    }
                    if len <= LOOKUP {
                        let shift = LOOKUP - len;
                        let first = (code << shift) as usize;
                        let entry = (len << 8) as u16 | u16::from(values[k]);
                        for slot in &mut fast[first..first + (1 << shift)] {
                            *slot = entry;
                        }
                    }
                    code += 1;
                    k += 1;
                }
                maxcode[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        let mut fast_ac = vec![0i32; 1 << LOOKUP];
        for (peek, entry) in fast_ac.iter_mut().enumerate() {
            let e = fast[peek];
            let (len, sym) = (u32::from(e >> 8), e & 0xFF);
            let (run, size) = (u32::from(sym >> 4), u32::from(sym & 15));
            if e == 0 || size == 0 || len + size > LOOKUP {
                continue;
            }
            let bits = ((peek as u32) >> (LOOKUP - len - size)) & ((1 << size) - 1);
            let value = bits as i32;
            let value = if value < 1 << (size - 1) {
                value - (1 << size) + 1
            } else {
                value
            };
            *entry = (value << 16) | (run << 8) as i32 | (len + size) as i32;
        }
        Ok(Huffman {
            fast,
            fast_ac,
            maxcode,
            offset,
            values: values.to_vec(),
        })
    }
}

/// Reads an entropy-coded segment MSB first.
#[derive(Debug)]
pub(super) struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Left-aligned: the next bit is the top bit.
    buf: u64,
    count: u32,
    /// A marker was reached at `pos`; only zero bits follow.
    marker: bool,
    /// Bits put into `buf` so far, and how many of them came from the data
    /// (the rest are the zeros past a marker).
    loaded: u64,
    real: u64,
}

/// True if any byte of `w` is 0xFF.
fn has_ff(w: u64) -> bool {
    let x = !w;
    (x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080) != 0
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8]) -> Bits<'a> {
        Bits {
            data,
            pos: 0,
            buf: 0,
            count: 0,
            marker: false,
            loaded: 0,
            real: 0,
        }
    }

    /// Whether more bits were consumed than the data held: the scan ran into
    /// a marker or the end of the file before its last block (a cut-off or
    /// damaged file; libjpeg only warns, and the pipeline refuses it).
    pub(super) fn overrun(&self) -> bool {
        self.consumed() > self.real
    }

    /// Bits consumed so far (of the unstuffed stream).
    #[inline]
    pub(super) fn consumed(&self) -> u64 {
        self.loaded - u64::from(self.count)
    }

    /// Whether the reader has run into a marker (or the end of the data).
    pub(super) fn at_marker(&self) -> bool {
        self.marker
    }

    /// Tops the buffer up to at least 57 bits.
    #[inline]
    fn refill(&mut self) {
        if !self.marker
            && let Some(word) = self.data.get(self.pos..self.pos + 8)
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            let word = u64::from_be_bytes(b);
            if !has_ff(word) {
                let take = (64 - self.count) / 8;
                if take > 0 {
                    let bits = take * 8;
                    let fresh = if bits == 64 {
                        word
                    } else {
                        word >> (64 - bits)
                    };
                    self.buf |= fresh << (64 - self.count - bits);
                    self.count += bits;
                    self.loaded += u64::from(bits);
                    self.real += u64::from(bits);
                    self.pos += take as usize;
                }
                return;
            }
        }
        while self.count <= 56 {
            let byte = if self.marker {
                0
            } else {
                match self.data.get(self.pos) {
                    None => {
                        self.marker = true;
                        0
                    }
                    Some(&0xFF) => match self.data.get(self.pos + 1) {
                        Some(0) => {
                            self.pos += 2;
                            0xFF
                        }
                        // Fill bytes (FF FF …) before a marker.
                        Some(0xFF) => {
                            self.pos += 1;
                            continue;
                        }
                        _ => {
                            self.marker = true;
                            0
                        }
                    },
                    Some(&b) => {
                        self.pos += 1;
                        b
                    }
                }
            };
            self.buf |= u64::from(byte) << (56 - self.count);
            self.count += 8;
            self.loaded += 8;
            if !self.marker {
                self.real += 8;
            }
        }
    }

    /// The next `n` (1..=32) bits as a number.
    #[inline]
    pub(super) fn get(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.count < n {
            self.refill();
        }
        let v = (self.buf >> (64 - n)) as u32;
        self.buf <<= n;
        self.count -= n;
        v
    }

    /// Skips `n` bits (any number).
    #[inline]
    pub(super) fn skip(&mut self, mut n: u32) {
        while n > 32 {
            self.get(32);
            n -= 32;
        }
        self.get(n);
    }

    #[inline]
    pub(super) fn bit(&mut self) -> bool {
        self.get(1) == 1
    }

    /// A value of `s` bits, sign-extended as T.81 F.2.2.1 says.
    #[inline]
    pub(super) fn extend(&mut self, s: u32) -> Result<i32, Corrupt> {
        if s == 0 {
            return Ok(0);
        }
        if s > 16 {
            return Err(Corrupt("coefficient magnitude category above 16"));
        }
        let v = self.get(s) as i32;
        Ok(if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        })
    }

    /// An AC coefficient in one probe when its code and value are short:
    /// `Some((run, value))`, else `None` (nothing consumed; use `decode`).
    #[inline]
    pub(super) fn fast_ac(&mut self, h: &Huffman) -> Option<(usize, i32)> {
        if self.count < 16 {
            self.refill();
        }
        let e = h.fast_ac[(self.buf >> (64 - LOOKUP)) as usize];
        if e == 0 {
            return None;
        }
        let used = (e & 0xFF) as u32;
        self.buf <<= used;
        self.count -= used;
        Some((((e >> 8) & 15) as usize, e >> 16))
    }

    /// The next Huffman symbol.
    #[inline]
    pub(super) fn decode(&mut self, h: &Huffman) -> Result<u8, Corrupt> {
        if self.count < 16 {
            self.refill();
        }
        let entry = h.fast[(self.buf >> (64 - LOOKUP)) as usize];
        if entry != 0 {
            let len = u32::from(entry >> 8);
            self.buf <<= len;
            self.count -= len;
            return Ok(entry as u8);
        }
        for len in LOOKUP + 1..=16 {
            let code = (self.buf >> (64 - len)) as i32;
            if code <= h.maxcode[len as usize] {
                self.buf <<= len;
                self.count -= len;
                let at = h.offset[len as usize] + code;
                return h
                    .values
                    .get(at as usize)
                    .copied()
                    .ok_or(Corrupt("Huffman code out of its table"));
            }
        }
        Err(Corrupt("bad Huffman code"))
    }

    /// At a restart interval's end: drop the padding bits and step over the
    /// RSTn marker (or whatever marker comes; a missing one is tolerated).
    pub(super) fn restart(&mut self) {
        // The padding of the interval is dropped; zeros past the marker were
        // never data.
        self.buf = 0;
        self.count = 0;
        self.loaded = self.real;
        // Find the marker after the padding.
        while !self.marker {
            match self.data.get(self.pos) {
                None => self.marker = true,
                Some(&0xFF) => match self.data.get(self.pos + 1) {
                    Some(0) => self.pos += 2,
                    Some(0xFF) => self.pos += 1,
                    _ => self.marker = true,
                },
                Some(_) => self.pos += 1,
            }
        }
        if let Some(&m) = self.data.get(self.pos + 1)
            && (0xD0..=0xD7).contains(&m)
        {
            self.pos += 2;
            self.marker = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_is_removed_and_markers_stop_the_stream() {
        let data = [0xAB, 0xFF, 0x00, 0x12, 0xFF, 0xD9, 0x77];
        let mut b = Bits::new(&data);
        assert_eq!(b.get(8), 0xAB);
        assert_eq!(b.get(8), 0xFF);
        assert_eq!(b.get(4), 0x1);
        assert_eq!(b.get(4), 0x2);
        assert_eq!(b.get(16), 0);
        let long: Vec<u8> = (0u8..40).collect();
        let mut b = Bits::new(&long);
        for want in 0u32..40 {
            assert_eq!(b.get(8), want);
        }
    }

    #[test]
    fn huffman_codes_decode_short_and_long() {
        // Lengths: one code of 2 bits, one of 3, then one of 12.
        let mut counts = [0u8; 16];
        counts[1] = 1;
        counts[2] = 1;
        counts[11] = 1;
        let h = Huffman::new(&counts, &[7, 9, 42]).expect("table");
        // 00 → 7, 010 → 9, 0110 0000 0000 → 42
        let data = [0b0001_0011, 0b0000_0000, 0b0000_0000];
        let mut b = Bits::new(&data);
        assert_eq!(b.decode(&h).ok(), Some(7));
        assert_eq!(b.decode(&h).ok(), Some(9));
        assert_eq!(b.decode(&h).ok(), Some(42));
        assert!(
            Huffman::new(
                &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                &[1, 2, 3]
            )
            .is_err()
        );
    }

    #[test]
    fn the_ff_test_finds_every_position() {
        assert!(!has_ff(0x1234_5678_9ABC_DEF0));
        for i in 0..8 {
            assert!(has_ff(0xFFu64 << (8 * i)), "{i}");
            assert!(!has_ff(0xFEu64 << (8 * i)), "{i}");
        }
    }
}
