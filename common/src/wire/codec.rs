//! A bounds-checked reader and a length-back-patching writer for formats
//! made of nested length-prefixed parts (IKEv2 payloads, their proposals,
//! transforms and attributes), in the style of rustls' `Reader` and
//! `LengthPrefixedBuffer`.

use super::WireError;

/// Reads big-endian fields from a slice; every read names what it reads so
/// that a short buffer yields `WireError::Truncated(what)`.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A sub-reader over the next `n` bytes.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, WireError> {
        Ok(Reader::new(self.take(n, what)?))
    }
}

/// Appends big-endian fields to a `Vec`, and patches length fields once the
/// part they measure has been written.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    /// Bytes written to the underlying vector so far (including any that were
    /// there before this writer).
    pub fn position(&self) -> usize {
        self.out.len()
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.out.extend_from_slice(v);
    }

    /// Writes a zero `u16` to be patched later; returns where it is.
    pub fn u16_placeholder(&mut self) -> usize {
        let at = self.out.len();
        self.u16(0);
        at
    }

    /// Writes a zero `u32` to be patched later; returns where it is.
    pub fn u32_placeholder(&mut self) -> usize {
        let at = self.out.len();
        self.u32(0);
        at
    }

    /// Patches the `u16` at `at` with the number of bytes from `from` to the
    /// end. Lengths that do not fit are clamped; callers bound their sizes.
    pub fn patch_u16_len(&mut self, at: usize, from: usize) {
        let len = u16::try_from(self.out.len() - from).unwrap_or(u16::MAX);
        self.out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// Patches the `u32` at `at` with the number of bytes from `from` to the end.
    pub fn patch_u32_len(&mut self, at: usize, from: usize) {
        let len = u32::try_from(self.out.len() - from).unwrap_or(u32::MAX);
        self.out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Overwrites one byte already written (e.g. a "last" or "next" marker).
    pub fn patch_u8(&mut self, at: usize, v: u8) {
        self.out[at] = v;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reader_names_truncation() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.u16("b"), Err(WireError::Truncated("b")));
        assert_eq!(r.u8("c"), Ok(3));
        assert!(r.is_empty());
    }

    #[test]
    fn writer_back_patches() {
        let mut v = vec![0xff];
        let mut w = Writer::new(&mut v);
        let start = w.position();
        let at = w.u16_placeholder();
        w.bytes(&[9, 9, 9]);
        w.patch_u16_len(at, start);
        assert_eq!(v, [0xff, 0, 5, 9, 9, 9]);
    }
}
