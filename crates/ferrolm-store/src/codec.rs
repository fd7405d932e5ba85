//! The compact binary encoding of records: a hand-written writer and a bounds-checked reader.
//!
//! Unsigned integers are LEB128 varints, byte strings and UTF-8 strings are a varint length
//! followed by the bytes, options are a 0/1 tag, fixed-size arrays are written as they are.
//! The reader never allocates more than the input holds and reports every malformation as a
//! [`DecodeError`]; it never panics.

use zeroize::Zeroizing;

/// Why a record's bytes did not decode (after they authenticated: a broken or newer writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) &'static str);

pub(crate) type DecodeResult<T> = Result<T, DecodeError>;

/// Appends fields to a buffer that is zeroized when dropped (records can hold secrets).
pub(crate) struct Writer {
    buf: Zeroizing<Vec<u8>>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { buf: Zeroizing::new(Vec::with_capacity(capacity)) }
    }

    /// Makes room for `additional` more bytes. A full buffer is moved into a new one twice as
    /// large and the old one is zeroized as it drops: a `Vec`'s own growth would free the old
    /// allocation with the record's bytes still in it.
    fn reserve(&mut self, additional: usize) {
        let needed = self.buf.len().saturating_add(additional);
        if needed > self.buf.capacity() {
            let mut grown = Zeroizing::new(Vec::with_capacity(needed.max(self.buf.capacity().saturating_mul(2))));
            grown.extend_from_slice(&self.buf);
            self.buf = grown;
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.reserve(1);
        self.buf.push(value);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub(crate) fn varint(&mut self, mut value: u64) {
        self.reserve(10);
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.buf.push(low);
                return;
            }
            self.buf.push(low | 0x80);
        }
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.varint(u64::from(value));
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.array(bytes);
    }

    pub(crate) fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    pub(crate) fn array(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                write(self, v);
            }
        }
    }

    pub(crate) fn opt_varint(&mut self, value: Option<u64>) {
        self.opt(value, Self::varint);
    }

    pub(crate) fn opt_str(&mut self, value: Option<&str>) {
        self.opt(value, Self::str);
    }

    pub(crate) fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

/// Reads fields back; every method checks the remaining length first.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn u8(&mut self) -> DecodeResult<u8> {
        let (&first, rest) = self.data.split_first().ok_or(DecodeError("truncated"))?;
        self.data = rest;
        Ok(first)
    }

    pub(crate) fn bool(&mut self) -> DecodeResult<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("invalid boolean")),
        }
    }

    pub(crate) fn varint(&mut self) -> DecodeResult<u64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                // Canonical form only (no trailing zero groups), so that decoding then
                // encoding gives back the same bytes.
                if byte == 0 && shift > 0 {
                    return Err(DecodeError("non-canonical varint"));
                }
                return Ok(value);
            }
        }
        Err(DecodeError("varint overflows 64 bits"))
    }

    pub(crate) fn u32(&mut self) -> DecodeResult<u32> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError("integer out of range"))
    }

    pub(crate) fn take(&mut self, len: usize) -> DecodeResult<&'a [u8]> {
        if len > self.data.len() {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(head)
    }

    pub(crate) fn bytes(&mut self) -> DecodeResult<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("length out of range"))?;
        self.take(len)
    }

    pub(crate) fn string(&mut self) -> DecodeResult<String> {
        let bytes = self.bytes()?;
        core::str::from_utf8(bytes).map(str::to_owned).map_err(|_| DecodeError("invalid UTF-8"))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> DecodeResult<T>) -> DecodeResult<Option<T>> {
        match self.u8()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            _ => Err(DecodeError("invalid option tag")),
        }
    }

    pub(crate) fn opt_varint(&mut self) -> DecodeResult<Option<u64>> {
        self.opt(Self::varint)
    }

    pub(crate) fn opt_string(&mut self) -> DecodeResult<Option<String>> {
        self.opt(Self::string)
    }

    pub(crate) fn finish(self) -> DecodeResult<()> {
        if self.data.is_empty() { Ok(()) } else { Err(DecodeError("trailing bytes")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_grows_itself_so_vec_never_reallocates_a_secret() {
        let mut w = Writer::with_capacity(1);
        let mut expected = Vec::new();
        for i in 0..2_000u32 {
            let piece = vec![(i % 251) as u8; (i % 37) as usize];
            // Every write has its room before `Vec` is asked to add a byte: the capacity
            // only changes through `reserve`, which zeroizes the buffer it leaves.
            w.reserve(piece.len() + 10);
            let capacity = w.buf.capacity();
            w.bytes(&piece);
            assert_eq!(w.buf.capacity(), capacity);
            expected.push(piece.len() as u8);
            expected.extend_from_slice(&piece);
        }
        assert_eq!(&*w.into_inner(), &expected[..]);
    }

    #[test]
    fn fields_round_trip() {
        let mut w = Writer::with_capacity(0);
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            w.varint(v);
        }
        w.bool(true);
        w.str("héllo");
        w.bytes(&[]);
        w.opt_varint(None);
        w.opt_str(Some("x"));
        w.array(&[7; 4]);
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(r.varint().unwrap(), v);
        }
        assert!(r.bool().unwrap());
        assert_eq!(r.string().unwrap(), "héllo");
        assert_eq!(r.bytes().unwrap(), b"");
        assert_eq!(r.opt_varint().unwrap(), None);
        assert_eq!(r.opt_string().unwrap().as_deref(), Some("x"));
        assert_eq!(r.array::<4>().unwrap(), [7; 4]);
        r.finish().unwrap();
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(Reader::new(&[]).u8(), Err(DecodeError("truncated")));
        assert_eq!(Reader::new(&[2]).bool(), Err(DecodeError("invalid boolean")));
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).varint().is_err());
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10]).u32().is_err());
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), Err(DecodeError("non-canonical varint")));
        assert!(Reader::new(&[5, b'a']).bytes().is_err());
        assert!(Reader::new(&[2, 0xff, 0xfe]).string().is_err());
        assert!(Reader::new(&[1]).finish().is_err());
        assert!(Reader::new(&[3]).opt_varint().is_err());
    }
}
