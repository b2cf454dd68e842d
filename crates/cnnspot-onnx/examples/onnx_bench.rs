//! Times the style network: `onnx_bench MODEL IMAGE.f32 STYLE.f32 H W [REPS]`
//! prints the output shape and, last, the mean seconds per run (after one
//! warm-up run). Used by `scripts/onnx_reference.py --bench`.

use std::path::Path;
use std::time::Instant;

use cnnspot_onnx::{Model, Tensor};

fn read_f32(path: &str) -> Result<Vec<f32>, std::io::Error> {
    Ok(std::fs::read(path)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        return Err("usage: onnx_bench MODEL IMAGE.f32 STYLE.f32 H W [REPS]".into());
    }
    let model = Model::from_file(Path::new(&a[1]))?;
    let (h, w): (usize, usize) = (a[4].parse()?, a[5].parse()?);
    let reps: usize = a.get(6).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let image = Tensor::new(vec![1, 3, h, w], read_f32(&a[2])?)?;
    let style = read_f32(&a[3])?;
    let style = Tensor::new(vec![style.len()], style)?;
    let feeds = [("image", &image), ("style_weights", &style)];
    let out = model.run(&feeds)?;
    let t = Instant::now();
    for _ in 0..reps {
        model.run(&feeds)?;
    }
    let s = t.elapsed().as_secs_f64() / reps.max(1) as f64;
    println!("output {:?}", out[0].1.shape());
    println!("{s:.4}");
    Ok(())
}
