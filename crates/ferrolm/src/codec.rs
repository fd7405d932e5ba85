//! Byte-level encodings: protobuf-style varints and fields (Olm and Megolm messages) and the
//! big-endian fixed-width layout libolm uses for pickles. Readers never panic and never read
//! past their input.

use zeroize::Zeroizing;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodecError {
    /// The input ended in the middle of a value.
    Truncated,
    /// A varint was longer than ten bytes or overflowed 64 bits.
    VarintOverflow,
    /// A field used a wire type this format never uses.
    UnsupportedWireType(u8),
}

impl CodecError {
    /// A short description, for the decode errors of each protocol.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Truncated => "a field is truncated",
            Self::VarintOverflow => "a varint overflows 64 bits",
            Self::UnsupportedWireType(_) => "a field has an unsupported wire type",
        }
    }
}

/// Appends `value` as a protobuf varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The encoded length of a varint.
pub(crate) const fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Appends a length-delimited field: tag, varint length, bytes.
pub(crate) fn write_bytes_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a varint field: tag, varint.
pub(crate) fn write_varint_field(out: &mut Vec<u8>, tag: u8, value: u64) {
    out.push(tag);
    write_varint(out, value);
}

/// A field of a protobuf-style message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FieldValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width field (wire types 1 and 5), which the formats here never use: skipped.
    Fixed,
}

/// Reads the fields of a protobuf-style message one by one, as libolm's decoder does: known
/// tags are interpreted by the caller; every field can be skipped.
pub(crate) struct FieldReader<'a> {
    input: &'a [u8],
}

impl<'a> FieldReader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for (i, byte) in self.input.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * i as u32;
            if shift == 63 && bits > 1 {
                return Err(CodecError::VarintOverflow);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                self.input = self.input.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        if self.input.len() >= 10 { Err(CodecError::VarintOverflow) } else { Err(CodecError::Truncated) }
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], CodecError> {
        let len = usize::try_from(len).map_err(|_| CodecError::Truncated)?;
        if len > self.input.len() {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.input.split_at(len);
        self.input = tail;
        Ok(head)
    }

    /// The next field as (field number, value), or `None` at the end of the input.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u64, FieldValue<'a>)>, CodecError> {
        if self.input.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        let value = match (key & 7) as u8 {
            0 => FieldValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                FieldValue::Fixed
            }
            2 => {
                let len = self.varint()?;
                FieldValue::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                FieldValue::Fixed
            }
            other => return Err(CodecError::UnsupportedWireType(other)),
        };
        Ok(Some((field, value)))
    }
}

/// Writes libolm's pickle layout: big-endian integers, one-byte booleans, raw key bytes.
///
/// The buffer holds secret keys, so it never leaves a copy of them behind: it zeroizes itself
/// when dropped, and it never lets `Vec` reallocate it (which would free the old block with
/// the secrets still in it). Callers give the exact size up front ([`PickleWriter::with_capacity`]),
/// so the buffer is allocated once; should a write still not fit, the writer moves to a larger
/// buffer itself and zeroizes the old one.
pub(crate) struct PickleWriter {
    buf: Zeroizing<Vec<u8>>,
}

impl PickleWriter {
    /// A writer for a pickle of `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { buf: Zeroizing::new(Vec::with_capacity(capacity)) }
    }

    /// A writer for a small pickle (up to 512 bytes without moving).
    pub(crate) fn new() -> Self {
        Self::with_capacity(512)
    }

    /// Makes room for `additional` bytes without leaving the old contents in freed memory.
    fn reserve(&mut self, additional: usize) {
        let needed = self.buf.len().saturating_add(additional);
        if needed > self.buf.capacity() {
            let mut grown = Zeroizing::new(Vec::with_capacity(needed.max(self.buf.capacity().saturating_mul(2))));
            grown.extend_from_slice(&self.buf);
            // The old buffer is zeroized, all of its capacity, as it drops here.
            self.buf = grown;
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes(&[value]);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.bytes(&value.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes have been written.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn finish(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

/// Reads libolm's pickle layout. Secret arrays it returns are zeroizing.
pub(crate) struct PickleReader<'a> {
    input: &'a [u8],
}

impl<'a> PickleReader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if len > self.input.len() {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.input.split_at(len);
        self.input = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    /// A one-byte boolean; like libolm, any non-zero byte is true.
    pub(crate) fn bool(&mut self) -> Result<bool, CodecError> {
        Ok(self.u8()? != 0)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    /// A public array (keys, flags): not zeroized.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A secret array, zeroized when dropped.
    pub(crate) fn secret<const N: usize>(&mut self) -> Result<Zeroizing<[u8; N]>, CodecError> {
        let mut out = Zeroizing::new([0u8; N]);
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Whether everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(value: u64) {
            let mut buf = Vec::new();
            write_varint(&mut buf, value);
            prop_assert_eq!(buf.len(), varint_len(value));
            buf.insert(0, 0x10); // field 2, varint
            let mut reader = FieldReader::new(&buf);
            prop_assert_eq!(reader.next_field().unwrap(), Some((2, FieldValue::Varint(value))));
            prop_assert_eq!(reader.next_field().unwrap(), None);
        }

        #[test]
        fn field_reader_never_panics(bytes: Vec<u8>) {
            let mut reader = FieldReader::new(&bytes);
            for _ in 0..bytes.len() + 1 {
                match reader.next_field() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn pickle_reader_never_panics(bytes: Vec<u8>) {
            let mut reader = PickleReader::new(&bytes);
            while reader.u32().is_ok() && reader.secret::<33>().is_ok() && reader.bool().is_ok() {}
        }
    }

    #[test]
    fn a_pickle_writer_that_outgrows_its_buffer_keeps_every_byte() {
        let mut w = PickleWriter::with_capacity(3);
        w.u8(1);
        w.u32(0x0203_0405);
        w.bytes(&[6; 100]);
        w.bool(true);
        let bytes = w.finish();
        assert_eq!(bytes[..5], [1, 2, 3, 4, 5]);
        assert_eq!(bytes.len(), 106);
        assert!(bytes[5..105].iter().all(|&b| b == 6));
        assert_eq!(bytes[105], 1);
    }

    #[test]
    fn overlong_varints_are_refused() {
        let mut reader = FieldReader::new(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(reader.next_field(), Err(CodecError::VarintOverflow));
        let mut reader = FieldReader::new(&[0x10, 0xff]);
        assert_eq!(reader.next_field(), Err(CodecError::Truncated));
        let mut reader = FieldReader::new(&[0x22, 0x05, 0x01]);
        assert_eq!(reader.next_field(), Err(CodecError::Truncated));
        let mut reader = FieldReader::new(&[0x0b]);
        assert_eq!(reader.next_field(), Err(CodecError::UnsupportedWireType(3)));
    }
}
