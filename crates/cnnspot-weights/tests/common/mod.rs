//! Hand-built pickles and checkpoint files for the tests.
#![allow(dead_code)]

use std::io::Write;

/// A minimal pickle writer (protocol 2 opcodes).
pub struct P(pub Vec<u8>);

impl P {
    pub fn new() -> P {
        P(vec![0x80, 2])
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut P {
        self.0.extend_from_slice(b);
        self
    }
    pub fn op(&mut self, b: u8) -> &mut P {
        self.0.push(b);
        self
    }
    pub fn mark(&mut self) -> &mut P {
        self.op(b'(')
    }
    pub fn tuple(&mut self) -> &mut P {
        self.op(b't')
    }
    pub fn str(&mut self, s: &str) -> &mut P {
        self.op(b'X');
        self.raw(&(s.len() as u32).to_le_bytes());
        self.raw(s.as_bytes())
    }
    pub fn int(&mut self, i: i64) -> &mut P {
        if (0..256).contains(&i) {
            self.op(b'K').op(i as u8)
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&i) {
            self.op(b'J');
            self.raw(&(i as i32).to_le_bytes())
        } else {
            self.op(0x8a).op(8);
            self.raw(&i.to_le_bytes())
        }
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut P {
        self.op(b'c');
        self.raw(module.as_bytes()).op(b'\n');
        self.raw(name.as_bytes()).op(b'\n')
    }
    pub fn ints(&mut self, v: &[usize]) -> &mut P {
        self.mark();
        for &x in v {
            self.int(x as i64);
        }
        self.tuple()
    }
    pub fn empty_dict(&mut self) -> &mut P {
        self.op(b'}')
    }
    pub fn setitem(&mut self) -> &mut P {
        self.op(b's')
    }
    pub fn stop(&mut self) -> Vec<u8> {
        self.op(b'.');
        self.0.clone()
    }
    /// `('storage', torch.<storage_class>, key, 'cpu', numel)` + BINPERSID.
    pub fn storage(&mut self, storage_class: &str, key: &str, numel: usize) -> &mut P {
        self.mark().str("storage").global("torch", storage_class);
        self.str(key).str("cpu").int(numel as i64).tuple();
        self.op(b'Q')
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(
        &mut self,
        storage_class: &str,
        key: &str,
        numel: usize,
        offset: usize,
        shape: &[usize],
        strides: &[usize],
    ) -> &mut P {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.mark();
        self.storage(storage_class, key, numel);
        self.int(offset as i64).ints(shape).ints(strides);
        self.op(0x89); // False
        self.global("collections", "OrderedDict").op(b')').op(b'R');
        self.tuple().op(b'R')
    }
    /// An OrderedDict on the stack (fill it with key/value + setitem).
    pub fn ordered_dict(&mut self) -> &mut P {
        self.global("collections", "OrderedDict").op(b')').op(b'R')
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A zip-format checkpoint: `archive/data.pkl`, `archive/byteorder`,
/// `archive/data/<key>` for each storage.
pub fn zip_checkpoint(pkl: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opts).unwrap();
        z.write_all(pkl).unwrap();
        z.start_file("archive/byteorder", opts).unwrap();
        z.write_all(b"little").unwrap();
        for (k, d) in storages {
            z.start_file(format!("archive/data/{k}"), opts).unwrap();
            z.write_all(d).unwrap();
        }
        z.start_file("archive/version", opts).unwrap();
        z.write_all(b"3\n").unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

/// A legacy checkpoint: magic, protocol, sys_info, `main`, key list, then
/// each storage as (count, bytes). `count` may lie about the bytes.
pub fn legacy_checkpoint(main: &[u8], storages: &[(&str, u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    // magic number 0x1950a86a20f9469cfc6c as LONG1
    out.extend_from_slice(&[0x80, 2, 0x8a, 10]);
    out.extend_from_slice(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    out.push(b'.');
    out.extend_from_slice(&P::new().int(1001).stop());
    out.extend_from_slice(
        &P::new()
            .empty_dict()
            .str("protocol_version")
            .int(1001)
            .setitem()
            .str("little_endian")
            .op(0x88)
            .setitem()
            .stop(),
    );
    out.extend_from_slice(main);
    let mut keys = P::new();
    keys.op(b']').mark();
    for (k, _, _) in storages {
        keys.str(k);
    }
    keys.op(b'e');
    out.extend_from_slice(&keys.stop());
    for (_, count, data) in storages {
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}
