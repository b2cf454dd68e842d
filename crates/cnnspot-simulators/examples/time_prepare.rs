//! Times `prepare` of every simulator (default options) on the first 40
//! photos of a folder, writing the cache to a temporary folder, and makes
//! one 256x256 fake with each.
//!
//! `cargo run --release -p cnnspot-simulators --example time_prepare -- <photo dir> [names...]`

use std::path::PathBuf;
use std::time::Instant;

use cnnspot_generators::Generator;
use cnnspot_simulators::{names, prepare_with, FitOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: time_prepare <photo dir> [names...]")?,
    );
    let wanted: Vec<String> = args.collect();
    let mut reals: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    reals.sort();
    reals.truncate(40);
    let cache = std::env::temp_dir().join(format!("cnnspot-sim-timing-{}", std::process::id()));
    let first = image::open(&reals[0])?.to_rgb8();
    let crop = image::imageops::crop_imm(&first, 0, 0, 256, 256).to_image();
    for name in names() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let opts = FitOptions::for_name(name);
        let sim = prepare_with(name, &reals, &cache, 0, &opts, &mut |s, n, l| {
            if s == 1 || s % 50 == 0 || s == n {
                eprintln!("  {name} step {s}/{n} loss {l:.4}");
            }
        })?;
        let r = sim.report();
        let t = Instant::now();
        let out = sim.make(&crop, 0)?;
        let make_s = t.elapsed().as_secs_f64();
        out.save(cache.join(format!("{name}.png")))?;
        let l = &r.losses;
        let tail = l[l.len().saturating_sub(10)..].iter().sum::<f32>() / 10f32.min(l.len() as f32);
        println!(
            "{name}: prepare {:.1}s, L1 first {:.4} last10 {:.4}, make 256x256 {:.2}s [{}]",
            r.seconds,
            l.first().copied().unwrap_or(f32::NAN),
            tail,
            make_s,
            r.arch
        );
    }
    eprintln!("outputs in {}", cache.display());
    Ok(())
}
