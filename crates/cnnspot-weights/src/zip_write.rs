//! The zip container exactly as PyTorch's `PyTorchStreamWriter` (miniz)
//! writes it, so that files are laid out like `torch.save`'s:
//!
//! * records are stored (no compression), each record's data starting at a
//!   multiple of 64 bytes: the local header carries an extra field `FB`
//!   padded with `Z` bytes to get there;
//! * local headers hold no CRC or sizes (flag bit 3): a data descriptor
//!   follows each non-empty record; empty records have neither (PyTorch's
//!   loader relies on this when it computes storage offsets itself);
//! * no timestamps, "version made by" 0;
//! * a zip64 end of central directory record and locator are always
//!   written, and zip64 extra fields (and 64-bit data descriptors) for
//!   records whose size or offset reaches 4 GiB.

use std::io::{self, Write};

/// Data of every record starts at a multiple of this (`kFieldAlignment`).
pub(crate) const ALIGNMENT: u64 = 64;

const LOCAL_HEADER_LEN: u64 = 30;
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
const FLAG_UTF8: u16 = 0x0800;

struct Entry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
    flags: u16,
}

/// Writes records one after another to `w`, then the central directory.
pub(crate) struct ZipWriter<W: Write> {
    w: W,
    pos: u64,
    entries: Vec<Entry>,
    /// Sizes and offsets at or above this need zip64 fields; 0xFFFF_FFFF in
    /// real files, lowered by unit tests to exercise the zip64 paths.
    zip64_at: u64,
}

fn zip64_extra(size: Option<u64>, offset: Option<u64>) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(s) = size {
        // uncompressed then compressed size: equal, records are stored
        body.extend_from_slice(&s.to_le_bytes());
        body.extend_from_slice(&s.to_le_bytes());
    }
    if let Some(o) = offset {
        body.extend_from_slice(&o.to_le_bytes());
    }
    if body.is_empty() {
        return body;
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

impl<W: Write> ZipWriter<W> {
    pub fn new(w: W) -> Self {
        ZipWriter {
            w,
            pos: 0,
            entries: Vec::new(),
            zip64_at: u64::from(u32::MAX),
        }
    }

    #[cfg(test)]
    fn with_zip64_threshold(w: W, zip64_at: u64) -> Self {
        ZipWriter {
            zip64_at,
            ..ZipWriter::new(w)
        }
    }

    /// A 32-bit size or offset field: 0xFFFFFFFF when the zip64 field holds it.
    fn field32(&self, v: u64) -> u32 {
        if v >= self.zip64_at {
            u32::MAX
        } else {
            v as u32
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Adds record `name` holding the concatenation of `parts`.
    pub fn record(&mut self, name: &str, parts: &[&[u8]]) -> io::Result<()> {
        let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let offset = self.pos;
        let big_size = size >= self.zip64_at;
        let big_offset = offset >= self.zip64_at;
        let z64 = zip64_extra(big_size.then_some(size), big_offset.then_some(offset));
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record name too long"))?;

        let data_start = offset + LOCAL_HEADER_LEN + name.len() as u64 + z64.len() as u64 + 4;
        let pad = (ALIGNMENT - data_start % ALIGNMENT) % ALIGNMENT;
        let extra_len = z64.len() + 4 + pad as usize;

        let flags = if size > 0 {
            FLAG_UTF8 | FLAG_DATA_DESCRIPTOR
        } else {
            FLAG_UTF8
        };
        let mut h = Vec::with_capacity(LOCAL_HEADER_LEN as usize + name.len() + extra_len);
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // version needed
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&0u32.to_le_bytes()); // time, date
        h.extend_from_slice(&[0u8; 12]); // crc and sizes: in the data descriptor
        h.extend_from_slice(&name_len.to_le_bytes());
        h.extend_from_slice(&(extra_len as u16).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&z64);
        h.extend_from_slice(b"FB");
        h.extend_from_slice(&(pad as u16).to_le_bytes());
        h.resize(h.len() + pad as usize, b'Z');
        self.put(&h)?;

        let mut crc = Crc32::new();
        for p in parts {
            crc.update(p);
            self.put(p)?;
        }
        let crc = crc.finish();

        if size > 0 {
            let mut d = Vec::with_capacity(24);
            d.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            d.extend_from_slice(&crc.to_le_bytes());
            if big_size || big_offset {
                d.extend_from_slice(&size.to_le_bytes());
                d.extend_from_slice(&size.to_le_bytes());
            } else {
                d.extend_from_slice(&(size as u32).to_le_bytes());
                d.extend_from_slice(&(size as u32).to_le_bytes());
            }
            self.put(&d)?;
        }
        self.entries.push(Entry {
            name: name.to_owned(),
            crc,
            size,
            offset,
            flags,
        });
        Ok(())
    }

    /// A hash of every record's CRC so far (for the serialization id).
    pub fn crc_digest(&self) -> u64 {
        self.entries.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, e| {
            (h ^ u64::from(e.crc)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// Writes the central directory and end records; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let cd_start = self.pos;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let big_size = e.size >= self.zip64_at;
            let big_offset = e.offset >= self.zip64_at;
            let z64 = zip64_extra(big_size.then_some(e.size), big_offset.then_some(e.offset));
            let mut c = Vec::with_capacity(46 + e.name.len() + z64.len());
            c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            c.extend_from_slice(&0u16.to_le_bytes()); // version made by
            c.extend_from_slice(&0u16.to_le_bytes()); // version needed
            c.extend_from_slice(&e.flags.to_le_bytes());
            c.extend_from_slice(&0u16.to_le_bytes()); // stored
            c.extend_from_slice(&0u32.to_le_bytes()); // time, date
            c.extend_from_slice(&e.crc.to_le_bytes());
            c.extend_from_slice(&self.field32(e.size).to_le_bytes());
            c.extend_from_slice(&self.field32(e.size).to_le_bytes());
            c.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            c.extend_from_slice(&(z64.len() as u16).to_le_bytes());
            c.extend_from_slice(&[0u8; 10]); // comment length, disk, attributes
            c.extend_from_slice(&self.field32(e.offset).to_le_bytes());
            c.extend_from_slice(e.name.as_bytes());
            c.extend_from_slice(&z64);
            self.put(&c)?;
        }
        let cd_size = self.pos - cd_start;
        let n = entries.len() as u64;
        let eocd64_at = self.pos;

        let mut t = Vec::with_capacity(56 + 20 + 22);
        t.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        t.extend_from_slice(&44u64.to_le_bytes());
        t.extend_from_slice(&0x031eu16.to_le_bytes()); // made by: unix, 3.0
        t.extend_from_slice(&0x002du16.to_le_bytes()); // needed: 4.5 (zip64)
        t.extend_from_slice(&[0u8; 8]); // disk numbers
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&cd_size.to_le_bytes());
        t.extend_from_slice(&cd_start.to_le_bytes());

        t.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&eocd64_at.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());

        let n16 = u16::try_from(n).unwrap_or(u16::MAX);
        t.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        t.extend_from_slice(&[0u8; 4]); // disk numbers
        t.extend_from_slice(&n16.to_le_bytes());
        t.extend_from_slice(&n16.to_le_bytes());
        t.extend_from_slice(&self.field32(cd_size).to_le_bytes());
        t.extend_from_slice(&self.field32(cd_start).to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        self.put(&t)?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// CRC-32 (IEEE, as zip uses), slicing by 8: checkpoints are hundreds of MB.
struct Crc32(u32);

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

impl Crc32 {
    fn new() -> Self {
        Crc32(!0)
    }

    fn update(&mut self, data: &[u8]) {
        let t = &CRC_TABLES;
        let mut c = self.0;
        let mut chunks = data.chunks_exact(8);
        for ch in &mut chunks {
            let lo = c ^ u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
            let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
            c = t[7][(lo & 0xff) as usize]
                ^ t[6][((lo >> 8) & 0xff) as usize]
                ^ t[5][((lo >> 16) & 0xff) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xff) as usize]
                ^ t[2][((hi >> 8) & 0xff) as usize]
                ^ t[1][((hi >> 16) & 0xff) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            c = (c >> 8) ^ t[0][((c ^ u32::from(b)) & 0xff) as usize];
        }
        self.0 = c;
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    #[test]
    fn crc32_matches_known_values() {
        let crc = |d: &[u8]| {
            let mut c = Crc32::new();
            c.update(d);
            c.finish()
        };
        assert_eq!(crc(b""), 0);
        assert_eq!(crc(b"123456789"), 0xcbf4_3926);
        // the fixture's `byteorder` record ("little") has CRC 434322821
        assert_eq!(crc(b"little"), 434_322_821);
        // split updates agree with one update
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut c = Crc32::new();
        c.update(&data[..13]);
        c.update(&data[13..]);
        assert_eq!(c.finish(), crc(&data));
    }

    fn check_archive(bytes: Vec<u8>, records: &[(&str, Vec<u8>)]) {
        for (name, data) in records {
            // data aligned to 64 bytes, found where the local header says
            let pos = bytes
                .windows(name.len())
                .position(|w| w == name.as_bytes())
                .unwrap();
            let hdr = pos - 30;
            let extra = u16::from_le_bytes([bytes[hdr + 28], bytes[hdr + 29]]) as usize;
            let start = pos + name.len() + extra;
            assert_eq!(start % 64, 0, "{name}");
            assert_eq!(&bytes[start..start + data.len()], &data[..], "{name}");
        }
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        assert_eq!(zip.len(), records.len());
        for (name, data) in records {
            let mut f = zip.by_name(name).unwrap();
            let mut got = Vec::new();
            f.read_to_end(&mut got).unwrap();
            assert_eq!(&got, data, "{name}");
        }
    }

    #[test]
    fn records_are_aligned_and_readable() {
        let records = vec![
            ("a/data.pkl", b"hello".to_vec()),
            ("a/data/0", vec![]),
            ("a/data/1", (0..300u32).map(|i| i as u8).collect()),
            ("a/version", b"3\n".to_vec()),
        ];
        let mut z = ZipWriter::new(Vec::new());
        for (n, d) in &records {
            z.record(n, &[&d[..]]).unwrap();
        }
        check_archive(z.finish().unwrap(), &records);
    }

    #[test]
    fn zip64_fields_are_readable() {
        // A tiny threshold makes every size and offset "large".
        let records = vec![
            ("a/data.pkl", b"0123456789abcdef0123".to_vec()),
            ("a/data/0", (0..100u32).map(|i| i as u8).collect()),
            ("a/data/1", vec![]),
            ("a/version", b"3\n".to_vec()),
        ];
        let mut z = ZipWriter::with_zip64_threshold(Vec::new(), 10);
        for (n, d) in &records {
            z.record(n, &[&d[..]]).unwrap();
        }
        check_archive(z.finish().unwrap(), &records);
    }
}
