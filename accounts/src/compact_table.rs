//! Long tables of a start snapshot written down compactly: rows of
//! numbers, each number as a LEB128 varint, most of them as the zigzagged
//! difference from the same column of the row before (ids, revisions and
//! times grow a little from row to row, so each takes a byte or two),
//! decimals as their scale and sign in a byte and their mantissa as a
//! varint. Carried in a snapshot's JSON as one base64 string.
//!
//! Why not JSON rows: at 10 million events the bench's snapshot holds 4
//! million closed orders and 4 million fills, which took 0.9 s each to
//! parse as JSON arrays of numbers and decimal strings, most of a start.
//! A varint reads in a few nanoseconds.
//!
//! A reader refuses what a writer cannot have written (a varint past 64
//! bits, a decimal past 28 digits of scale or 96 bits of mantissa, a
//! table cut short or with bytes left over) with a [`TableError`], and
//! never trusts a length for how much to allocate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a table does not read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("a table is cut short")]
    CutShort,
    #[error("a number in a table runs past 64 bits")]
    TooLong,
    #[error("a decimal in a table is out of range")]
    BadDecimal,
    #[error("a table has {0} bytes after its last row")]
    Trailing(usize),
    #[error("a table is not base64: {0}")]
    NotBase64(String),
    #[error("{0}")]
    Bad(String),
}

/// A table as written: its bytes. In JSON, a base64 string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactTable(pub Vec<u8>);

impl Serialize for CompactTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for CompactTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CompactTable;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table in base64")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<CompactTable, E> {
                let bytes = STANDARD
                    .decode(s)
                    .map_err(|e| E::custom(TableError::NotBase64(e.to_string())))?;
                Ok(CompactTable(bytes))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Writes rows, a column at a time.
#[derive(Default)]
pub struct TableWriter {
    bytes: Vec<u8>,
}

impl TableWriter {
    /// A number as it is.
    pub fn number(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.bytes.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.bytes.push(n as u8);
    }

    /// A number as its difference from `last` (the column's value in the
    /// row before), which becomes `n`.
    pub fn delta(&mut self, n: u64, last: &mut u64) {
        let d = n.wrapping_sub(*last) as i64;
        self.number(((d << 1) ^ (d >> 63)) as u64);
        *last = n;
    }

    /// A decimal exactly: its scale and sign, then its mantissa.
    pub fn decimal(&mut self, d: Decimal) {
        let negative = if d.is_sign_negative() { 0x80 } else { 0 };
        self.bytes.push(d.scale() as u8 | negative);
        let mantissa = d.mantissa().unsigned_abs();
        self.number(mantissa as u64);
        self.number((mantissa >> 64) as u64);
    }

    /// A string: its length, then its bytes.
    pub fn text(&mut self, s: &str) {
        self.number(s.len() as u64);
        self.bytes.extend_from_slice(s.as_bytes());
    }

    pub fn finish(self) -> CompactTable {
        CompactTable(self.bytes)
    }
}

/// Reads back what a [`TableWriter`] wrote, in the same order.
pub struct TableReader<'a> {
    bytes: &'a [u8],
}

impl<'a> TableReader<'a> {
    pub fn new(table: &'a CompactTable) -> TableReader<'a> {
        TableReader::of_bytes(&table.0)
    }

    /// A reader of a table's bytes, wherever they are kept.
    pub fn of_bytes(bytes: &'a [u8]) -> TableReader<'a> {
        TableReader { bytes }
    }

    pub fn number(&mut self) -> Result<u64, TableError> {
        let mut n = 0u64;
        for (i, &b) in self.bytes.iter().enumerate() {
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(TableError::TooLong);
            }
            n |= bits << (7 * i);
            if b < 0x80 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(n);
            }
        }
        Err(TableError::CutShort)
    }

    pub fn delta(&mut self, last: &mut u64) -> Result<u64, TableError> {
        let z = self.number()?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        *last = last.wrapping_add(d as u64);
        Ok(*last)
    }

    pub fn decimal(&mut self) -> Result<Decimal, TableError> {
        let (&flags, rest) = self.bytes.split_first().ok_or(TableError::CutShort)?;
        self.bytes = rest;
        let (low, high) = (self.number()?, self.number()?);
        let mantissa = u128::from(high) << 64 | u128::from(low);
        if mantissa >> 96 != 0 {
            return Err(TableError::BadDecimal);
        }
        let mut d = Decimal::try_from_i128_with_scale(mantissa as i128, u32::from(flags & 0x7f))
            .map_err(|_| TableError::BadDecimal)?;
        d.set_sign_negative(flags & 0x80 != 0);
        Ok(d)
    }

    pub fn text(&mut self) -> Result<&'a str, TableError> {
        let len = self.number()?;
        let len = usize::try_from(len).map_err(|_| TableError::CutShort)?;
        if len > self.bytes.len() {
            return Err(TableError::CutShort);
        }
        let (s, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        std::str::from_utf8(s).map_err(|_| TableError::Bad("a text in a table is not UTF-8".into()))
    }

    /// Whether every row has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The end of the table: an error if bytes are left.
    pub fn finish(self) -> Result<(), TableError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(TableError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_anything_cut_is_refused() {
        let decimals = [
            "0",
            "-0",
            "0.001",
            "-30000.12345678",
            "79228162514264337593543950335",
            "-7.9228162514264337593543950335",
            "1e-28",
        ];
        let decimals: Vec<Decimal> = decimals
            .iter()
            .map(|s| Decimal::from_scientific(s).or_else(|_| s.parse()).unwrap())
            .collect();
        let numbers = [0, 1, 127, 128, u64::MAX, u64::MAX - 1, 1 << 63, 300];
        let mut w = TableWriter::default();
        let mut last = 0;
        for n in numbers {
            w.number(n);
            w.delta(n, &mut last);
        }
        for d in &decimals {
            w.decimal(*d);
        }
        w.text("BTC-USD");
        w.text("");
        let table = w.finish();
        let json = serde_json::to_string(&table).unwrap();
        let table: CompactTable = serde_json::from_str(&json).unwrap();

        let read_all = |table: &CompactTable| -> Result<(), TableError> {
            let mut r = TableReader::new(table);
            let mut last = 0;
            for n in numbers {
                assert_eq!(r.number()?, n);
                assert_eq!(r.delta(&mut last)?, n);
            }
            for d in &decimals {
                let read = r.decimal()?;
                assert_eq!(read.serialize(), d.serialize(), "{d} exactly");
            }
            assert_eq!(r.text()?, "BTC-USD");
            assert_eq!(r.text()?, "");
            r.finish()
        };
        read_all(&table).unwrap();
        for cut in 0..table.0.len() {
            let short = CompactTable(table.0[..cut].to_vec());
            assert_eq!(read_all(&short), Err(TableError::CutShort), "cut at {cut}");
        }
        let mut long = table.clone();
        long.0.push(0);
        assert_eq!(read_all(&long), Err(TableError::Trailing(1)));

        let refused = |bytes: &[u8]| {
            let t = CompactTable(bytes.to_vec());
            let mut r = TableReader::new(&t);
            (r.number().err(), TableReader::new(&t).decimal().err())
        };
        // Eleven bytes of varint, or a tenth byte past 64 bits.
        assert_eq!(refused(&[0xff; 11]).0, Some(TableError::TooLong));
        let mut past = [0xffu8; 10];
        past[9] = 0x02;
        assert_eq!(refused(&past).0, Some(TableError::TooLong));
        // A scale of 29, a mantissa of 97 bits.
        assert_eq!(refused(&[29, 1, 0]).1, Some(TableError::BadDecimal));
        assert_eq!(
            refused(&[0, 0, 0x80, 0x80, 0x80, 0x80, 0x10]).1,
            Some(TableError::BadDecimal)
        );
        assert!(serde_json::from_str::<CompactTable>("\"not base64!\"").is_err());
    }
}
