//! Times one graph: `ncnn_bench PARAM BIN INPUT.f32 C H W [REPS]` prints the
//! output shape and, last, the mean seconds per forward pass (after one
//! warm-up run). Used by `scripts/ncnn_reference.py --bench`.

use std::path::Path;
use std::time::Instant;

use cnnspot_ncnn::{Mat, Net};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 7 {
        return Err("usage: ncnn_bench PARAM BIN INPUT.f32 C H W [REPS]".into());
    }
    let net = Net::from_files(Path::new(&a[1]), Path::new(&a[2]))?;
    let bytes = std::fs::read(&a[3])?;
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (c, h, w): (usize, usize, usize) = (a[4].parse()?, a[5].parse()?, a[6].parse()?);
    let reps: usize = a.get(7).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let input = Mat::new(c, h, w, data)?;
    let out = net.run(&input)?;
    let t = Instant::now();
    for _ in 0..reps {
        net.run(&input)?;
    }
    let s = t.elapsed().as_secs_f64() / reps.max(1) as f64;
    println!("output {}x{}x{}", out.c, out.h, out.w);
    println!("{s:.4}");
    Ok(())
}
