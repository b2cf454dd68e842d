//! What a JPEG's header says about how it was encoded: the quality setting
//! (estimated from its quantisation tables), the chroma subsampling, and
//! whether it is progressive. Only the markers before the scan are read.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

/// The IJG (libjpeg) standard luminance table, Annex K of the JPEG
/// standard, in natural (row-major) order.
pub const STD_LUMINANCE: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, //
    12, 12, 14, 19, 26, 58, 60, 55, //
    14, 13, 16, 24, 40, 57, 69, 56, //
    14, 17, 22, 29, 51, 87, 80, 62, //
    18, 22, 37, 56, 68, 109, 103, 77, //
    24, 35, 55, 64, 81, 104, 113, 92, //
    49, 64, 78, 87, 103, 121, 120, 101, //
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// The IJG standard chrominance table, natural order.
pub const STD_CHROMINANCE: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, //
    18, 21, 26, 66, 99, 99, 99, 99, //
    24, 26, 56, 99, 99, 99, 99, 99, //
    47, 66, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99,
];

/// Natural-order index of the k-th coefficient in zigzag order (the order
/// of tables in a DQT segment).
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// libjpeg's `jpeg_quality_scaling` then `jpeg_add_quant_table`: the table
/// an IJG-derived encoder (libjpeg, libjpeg-turbo, MozJPEG without its own
/// tables, Pillow, OpenCV...) writes for `quality` (1..=100), in natural
/// order.
pub fn ijg_table(base: &[u16; 64], quality: u8, force_baseline: bool) -> [u16; 64] {
    let q = u32::from(quality.clamp(1, 100));
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let max = if force_baseline { 255 } else { 32767 };
    std::array::from_fn(|i| ((u32::from(base[i]) * scale + 50) / 100).clamp(1, max) as u16)
}

/// An estimated quality setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quality {
    /// The IJG quality (1..=100) whose tables are closest.
    pub quality: u8,
    /// Whether the tables are exactly those of that quality; otherwise the
    /// encoder used its own tables and `quality` is the nearest match.
    pub exact: bool,
}

impl std::fmt::Display for Quality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exact {
            write!(f, "q{}", self.quality)
        } else {
            write!(f, "~q{}", self.quality)
        }
    }
}

/// The IJG quality whose scaled standard tables match `luma` (and `chroma`,
/// when given), both in natural order: exact when some quality reproduces
/// them, otherwise the quality with the smallest sum of absolute
/// differences.
pub fn estimate_quality(luma: &[u16; 64], chroma: Option<&[u16; 64]>) -> Quality {
    let mut best = (u64::MAX, 0u8);
    // From 100 down, so that among equal tables the highest quality is named.
    for q in (1..=100u8).rev() {
        let mut distance = 0u64;
        for baseline in [true, false] {
            let mut d = table_distance(luma, &ijg_table(&STD_LUMINANCE, q, baseline));
            if let Some(c) = chroma {
                d += table_distance(c, &ijg_table(&STD_CHROMINANCE, q, baseline));
            }
            distance = if baseline { d } else { distance.min(d) };
        }
        if distance < best.0 {
            best = (distance, q);
        }
    }
    Quality {
        quality: best.1,
        exact: best.0 == 0,
    }
}

fn table_distance(a: &[u16; 64], b: &[u16; 64]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum()
}

/// What the header of a JPEG file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JpegHeader {
    /// The estimated quality, when the file has a luminance table.
    pub quality: Option<Quality>,
    /// "4:2:0", "4:2:2", "4:4:4", "4:4:0", "grey", or the luma sampling
    /// factors as "HxV".
    pub subsampling: Option<String>,
    /// Whether the frame is progressive.
    pub progressive: bool,
    /// Quantisation tables 0..=3 in natural order, as present.
    #[serde(skip)]
    pub tables: [Option<[u16; 64]>; 4],
}

/// Reads the markers of a JPEG file up to its first scan.
pub fn read_header(path: &Path) -> std::io::Result<JpegHeader> {
    let file = std::fs::File::open(path)?;
    parse_header(BufReader::new(file))
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// As [`read_header`], from any reader positioned at the start of a JPEG.
pub fn parse_header<R: BufRead>(mut r: R) -> std::io::Result<JpegHeader> {
    let mut byte = [0u8; 1];
    let mut two = [0u8; 2];
    r.read_exact(&mut two)?;
    if two != [0xFF, 0xD8] {
        return Err(bad("not a JPEG file (no SOI marker)"));
    }
    let mut tables: [Option<[u16; 64]>; 4] = [None; 4];
    // (component id, sampling factors, table index) of the frame.
    let mut components: Vec<(u8, u8, u8, usize)> = Vec::new();
    let mut progressive = false;
    loop {
        r.read_exact(&mut byte)?;
        if byte[0] != 0xFF {
            return Err(bad("marker expected"));
        }
        let mut marker = 0xFF;
        while marker == 0xFF {
            r.read_exact(&mut byte)?;
            marker = byte[0];
        }
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => break,
            _ => {}
        }
        r.read_exact(&mut two)?;
        let len = usize::from(u16::from_be_bytes(two));
        if len < 2 {
            return Err(bad("segment length below 2"));
        }
        let body_len = len - 2;
        match marker {
            0xDB | 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                let mut body = vec![0u8; body_len];
                r.read_exact(&mut body)?;
                if marker == 0xDB {
                    read_dqt(&body, &mut tables)?;
                } else {
                    progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
                    let n = usize::from(*body.get(5).ok_or_else(|| bad("short SOF"))?);
                    components.clear();
                    for c in 0..n {
                        let at = 6 + 3 * c;
                        let comp = body.get(at..at + 3).ok_or_else(|| bad("short SOF"))?;
                        components.push((
                            comp[0],
                            comp[1] >> 4,
                            comp[1] & 15,
                            usize::from(comp[2] & 3),
                        ));
                    }
                }
            }
            _ => {
                let skipped =
                    std::io::copy(&mut (&mut r).take(body_len as u64), &mut std::io::sink())?;
                if skipped != body_len as u64 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
    let luma_table = components.first().map_or(0, |c| c.3);
    let chroma_table = components.get(1).map(|c| c.3);
    let quality = tables[luma_table].as_ref().map(|luma| {
        let chroma = chroma_table.and_then(|t| tables[t].as_ref());
        estimate_quality(luma, chroma)
    });
    let subsampling = match components.as_slice() {
        [] => None,
        [_] => Some("grey".to_string()),
        [(_, h, v, _), rest @ ..] => {
            // Relative to the chroma components' own factors.
            let (ch, cv) = rest.first().map_or((1, 1), |c| (c.1.max(1), c.2.max(1)));
            let (h, v) = (h / ch, v / cv);
            Some(match (h, v) {
                (1, 1) => "4:4:4".to_string(),
                (2, 1) => "4:2:2".to_string(),
                (2, 2) => "4:2:0".to_string(),
                (1, 2) => "4:4:0".to_string(),
                (4, 1) => "4:1:1".to_string(),
                _ => format!("{h}x{v}"),
            })
        }
    };
    Ok(JpegHeader {
        quality,
        subsampling,
        progressive,
        tables,
    })
}

fn read_dqt(mut body: &[u8], tables: &mut [Option<[u16; 64]>; 4]) -> std::io::Result<()> {
    while let Some((&pq_tq, rest)) = body.split_first() {
        let precision16 = pq_tq >> 4 != 0;
        let id = usize::from(pq_tq & 3);
        let size = if precision16 { 128 } else { 64 };
        let data = rest.get(..size).ok_or_else(|| bad("short DQT segment"))?;
        let mut table = [0u16; 64];
        for (k, &natural) in ZIGZAG.iter().enumerate() {
            table[natural] = if precision16 {
                u16::from_be_bytes([data[2 * k], data[2 * k + 1]])
            } else {
                u16::from(data[k])
            };
        }
        tables[id] = Some(table);
        body = &rest[size..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ijg_scaling_matches_libjpeg_at_known_points() {
        // Quality 50 is the standard table itself; 100 is all ones.
        assert_eq!(ijg_table(&STD_LUMINANCE, 50, true), STD_LUMINANCE);
        assert_eq!(ijg_table(&STD_LUMINANCE, 100, true), [1; 64]);
        // Quality 75: scale 50, so 16 -> (800 + 50) / 100 = 8.
        assert_eq!(ijg_table(&STD_LUMINANCE, 75, true)[0], 8);
        // Quality 10: scale 500; 121 * 5 = 605 is clamped for baseline.
        assert_eq!(ijg_table(&STD_LUMINANCE, 10, true)[53], 255);
        assert_eq!(ijg_table(&STD_LUMINANCE, 10, false)[53], 605);
    }

    #[test]
    fn every_ijg_quality_is_recovered_exactly() {
        for q in 1..=100u8 {
            let l = ijg_table(&STD_LUMINANCE, q, true);
            let c = ijg_table(&STD_CHROMINANCE, q, true);
            let est = estimate_quality(&l, Some(&c));
            assert!(est.exact, "quality {q}");
            // Different qualities can give equal tables only where every
            // value is clamped; then the tables are equal and so is the file.
            assert_eq!(
                ijg_table(&STD_LUMINANCE, est.quality, true),
                l,
                "quality {q}"
            );
        }
    }

    #[test]
    fn foreign_tables_get_the_nearest_quality() {
        let mut l = ijg_table(&STD_LUMINANCE, 90, true);
        l[10] += 3;
        let est = estimate_quality(&l, None);
        assert_eq!(
            est,
            Quality {
                quality: 90,
                exact: false
            }
        );
        assert_eq!(est.to_string(), "~q90");
    }
}
