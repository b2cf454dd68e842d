//! Downloading the official CNNDetection checkpoints into a cache directory.
//!
//! * [`KNOWN`] lists the checkpoints published with Wang et al. (CVPR 2020),
//!   [`find_known`] looks one up by name.
//! * [`cache_dir`] resolves the cache folder (flag, `CNNSPOT_CACHE_DIR`,
//!   `$XDG_CACHE_HOME/cnnspot`, `$HOME/.cache/cnnspot`); checkpoints live in
//!   its `weights/` sub-folder ([`weights_dir`], [`cached_checkpoint`]).
//! * [`fetch_to`] downloads one file over HTTP(S): it follows a bounded number
//!   of redirects, streams into `<dest>.part`, resumes an existing `.part`
//!   with a `Range` request, refuses HTML pages, truncated bodies and
//!   oversized files, lets the caller validate the result, and only then
//!   renames it into place atomically and records its SHA-256 beside it
//!   (`<dest>.sha256`, in `sha256sum` format).
//!
//! Every error is one sentence that says what happened and what to do.

#![warn(missing_docs)]

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

/// A checkpoint published by the authors of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCheckpoint {
    /// Short name used on the command line (`blur_jpg_prob0.5`).
    pub name: &'static str,
    /// File name in the cache's `weights/` folder (`blur_jpg_prob0.5.pth`).
    pub file_name: &'static str,
    /// Direct-download address (Dropbox with `?dl=1`).
    pub url: &'static str,
    /// One line for `--help` and listings.
    pub description: &'static str,
}

/// The official checkpoints (reference repository, `weights/download_weights.sh`).
///
/// The script there uses `?dl=0`, which makes Dropbox answer with its HTML
/// preview page; `?dl=1` is Dropbox's documented way to ask for the file
/// itself (it answers with a redirect to a short-lived
/// `*.dl.dropboxusercontent.com` address, which [`fetch_to`] follows).
pub const KNOWN: &[KnownCheckpoint] = &[
    KnownCheckpoint {
        name: "blur_jpg_prob0.5",
        file_name: "blur_jpg_prob0.5.pth",
        url: "https://www.dropbox.com/s/2g2jagq2jn1fd0i/blur_jpg_prob0.5.pth?dl=1",
        description: "ResNet-50 trained on ProGAN images (20 LSUN classes) with blur and JPEG \
                      augmentation, each with probability 0.5; the paper's main model",
    },
    KnownCheckpoint {
        name: "blur_jpg_prob0.1",
        file_name: "blur_jpg_prob0.1.pth",
        url: "https://www.dropbox.com/s/h7tkpcgiwuftb6g/blur_jpg_prob0.1.pth?dl=1",
        description: "ResNet-50 trained on ProGAN images (20 LSUN classes) with blur and JPEG \
                      augmentation, each with probability 0.1; better on clean images, less robust",
    },
];

/// Name of the checkpoint used when none is given.
pub const DEFAULT_CHECKPOINT: &str = "blur_jpg_prob0.5";

/// Environment variable that overrides the cache folder.
pub const CACHE_DIR_ENV: &str = "CNNSPOT_CACHE_DIR";

/// Looks up a known checkpoint by its name (`blur_jpg_prob0.5`) or file name
/// (`blur_jpg_prob0.5.pth`).
pub fn find_known(name: &str) -> Option<&'static KnownCheckpoint> {
    KNOWN.iter().find(|k| k.name == name || k.file_name == name)
}

/// The names of the known checkpoints, comma-separated (for messages).
pub fn known_names() -> String {
    KNOWN.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// The cache folder: `flag` if given, else `$CNNSPOT_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/cnnspot`, else `$HOME/.cache/cnnspot`.
///
/// Empty variables count as unset, and a relative `XDG_CACHE_HOME` is ignored
/// as the XDG base-directory specification asks. The folder is not created.
pub fn cache_dir(flag: Option<&Path>) -> Result<PathBuf, FetchError> {
    let env = std::env::var_os;
    resolve_cache_dir(
        flag,
        env(CACHE_DIR_ENV).as_deref(),
        env("XDG_CACHE_HOME").as_deref(),
        env("HOME").as_deref(),
    )
    .ok_or(FetchError::NoCacheDir)
}

/// The pure rule behind [`cache_dir`], with the environment passed in:
/// `flag` > `cnnspot_cache_dir` > `xdg_cache_home`/cnnspot > `home`/.cache/cnnspot.
pub fn resolve_cache_dir(
    flag: Option<&Path>,
    cnnspot_cache_dir: Option<&OsStr>,
    xdg_cache_home: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Option<PathBuf> {
    fn set(v: Option<&OsStr>) -> Option<&Path> {
        v.filter(|v| !v.is_empty()).map(Path::new)
    }
    if let Some(flag) = set(flag.map(Path::as_os_str)) {
        return Some(flag.to_path_buf());
    }
    if let Some(dir) = set(cnnspot_cache_dir) {
        return Some(dir.to_path_buf());
    }
    if let Some(xdg) = set(xdg_cache_home).filter(|p| p.is_absolute()) {
        return Some(xdg.join("cnnspot"));
    }
    set(home).map(|h| h.join(".cache").join("cnnspot"))
}

/// The folder of a cache that holds checkpoints: `<cache>/weights`.
pub fn weights_dir(cache: &Path) -> PathBuf {
    cache.join("weights")
}

/// Where the checkpoint `name` lives (or would live) in the cache, present or
/// not.
///
/// A known name maps to its file name; another plain file name is used as it
/// is when it ends in `.pth`, `.pt` or `.safetensors` and gets `.pth`
/// appended otherwise. `None` for names that are not plain file names (empty,
/// `.`/`..`, or containing a path separator).
pub fn checkpoint_path(cache: &Path, name: &str) -> Option<PathBuf> {
    let file_name = match find_known(name) {
        Some(k) => k.file_name.to_string(),
        None => {
            if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
                return None;
            }
            if [".pth", ".pt", ".safetensors"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                name.to_string()
            } else {
                format!("{name}.pth")
            }
        }
    };
    Some(weights_dir(cache).join(file_name))
}

/// The path of the cached checkpoint `name` (see [`checkpoint_path`]), or
/// `None` when it has not been downloaded (missing or empty file).
pub fn cached_checkpoint(cache: &Path, name: &str) -> Option<PathBuf> {
    let path = checkpoint_path(cache, name)?;
    let meta = fs::metadata(&path).ok()?;
    (meta.is_file() && meta.len() > 0).then_some(path)
}

/// The file holding the SHA-256 of `path`: `<path>.sha256`.
pub fn sha256_sidecar(path: &Path) -> PathBuf {
    with_suffix(path, ".sha256")
}

/// The SHA-256 recorded beside `path` by [`fetch_to`] (lowercase hex), if
/// there is a readable, well-formed one.
pub fn recorded_sha256(path: &Path) -> Option<String> {
    let text = fs::read_to_string(sha256_sidecar(path)).ok()?;
    let hex = text.split_whitespace().next()?.to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

pub use cnnspot_files::{sha256_bytes, sha256_file};

/// Limits for [`fetch_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Connect timeout, and the longest wait for any single read or write.
    /// (Not a limit on the whole download.)
    pub timeout: Duration,
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Most redirects followed for one request.
    pub max_redirects: u32,
}

impl Default for FetchOptions {
    /// 30 s timeout, 2 GiB cap (the official checkpoints are a few hundred
    /// MB), 10 redirects.
    fn default() -> Self {
        FetchOptions {
            timeout: Duration::from_secs(30),
            max_bytes: 2 << 30,
            max_redirects: 10,
        }
    }
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The final file (the `dest` given to [`fetch_to`]).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256 (lowercase hex), also written to `<path>.sha256`.
    pub sha256: String,
    /// How many bytes came from an earlier, interrupted attempt (0 when the
    /// download started from scratch).
    pub resumed_from: u64,
}

/// Why a download or cache lookup failed. Each message is one sentence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No flag and none of the environment variables give a cache folder.
    #[error(
        "could not choose a cache folder because none of CNNSPOT_CACHE_DIR, XDG_CACHE_HOME \
         and HOME is set; pass --cache-dir or set CNNSPOT_CACHE_DIR"
    )]
    NoCacheDir,
    /// The name is not one of [`KNOWN`].
    #[error("there is no known checkpoint called {name:?}; the known ones are {known}")]
    UnknownCheckpoint {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// The address cannot be parsed or is not http(s).
    #[error("{url} is not a usable download address ({reason})")]
    InvalidUrl {
        /// The address.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A proxy variable is set to something unusable.
    #[error("the proxy {value:?} set in {var} is not usable ({reason}); fix or unset {var}")]
    InvalidProxy {
        /// The variable (`https_proxy`, ...).
        var: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// DNS, connection or early I/O failure: probably offline.
    #[error(
        "could not reach {host}: {reason}; download the file by hand from {url} \
         and pass it with --weights"
    )]
    Unreachable {
        /// The host that could not be reached (may be a redirect target).
        host: String,
        /// What went wrong (`connection refused`, ...).
        reason: String,
        /// The address originally asked for.
        url: String,
    },
    /// The server answered with an error status.
    #[error(
        "{host} answered HTTP {status} {status_text} for {url}; check the address, \
         or download the file by hand and pass it with --weights"
    )]
    Http {
        /// The host that answered (may be a redirect target).
        host: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        status_text: String,
        /// The address originally asked for.
        url: String,
    },
    /// The server's answer is not valid HTTP or not what was asked for.
    #[error("{host} sent a response that cannot be used ({reason}) for {url}")]
    Protocol {
        /// The host that answered.
        host: String,
        /// What is wrong with the response.
        reason: String,
        /// The address originally asked for.
        url: String,
    },
    /// More than [`FetchOptions::max_redirects`] redirects.
    #[error(
        "gave up on {url} after {max} redirects; download the file by hand and pass it \
         with --weights"
    )]
    TooManyRedirects {
        /// The address originally asked for.
        url: String,
        /// The limit.
        max: u32,
    },
    /// A redirect leads back to an address already visited.
    #[error(
        "{url} redirects in a loop (back to {location}); download the file by hand and \
         pass it with --weights"
    )]
    RedirectLoop {
        /// The address originally asked for.
        url: String,
        /// The address visited twice.
        location: String,
    },
    /// A redirect that cannot or must not be followed.
    #[error("{from} redirected to {location:?}, which was not followed ({reason})")]
    BadRedirect {
        /// The address that redirected.
        from: String,
        /// Its `Location` header.
        location: String,
        /// Why it was not followed.
        reason: String,
    },
    /// The file is larger than [`FetchOptions::max_bytes`].
    #[error(
        "{url} is at least {size} bytes, more than the limit of {limit} bytes; nothing was \
         kept"
    )]
    TooLarge {
        /// The address originally asked for.
        url: String,
        /// Size announced or received so far.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The connection closed before `Content-Length` bytes arrived.
    #[error(
        "the download from {url} was truncated after {received} of {expected} bytes; the \
         partial file {} was kept and the next attempt resumes from it",
        part.display()
    )]
    Truncated {
        /// The address originally asked for.
        url: String,
        /// The partial file kept.
        part: PathBuf,
        /// Bytes in the partial file.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// A read failed or timed out in the middle of the body.
    #[error(
        "the download from {url} was interrupted after {received} bytes ({reason}); the \
         partial file {} was kept and the next attempt resumes from it",
        part.display()
    )]
    Interrupted {
        /// The address originally asked for.
        url: String,
        /// The partial file kept.
        part: PathBuf,
        /// Bytes in the partial file.
        received: u64,
        /// What went wrong.
        reason: String,
    },
    /// The server sent a web page (login, preview or error page), not the file.
    #[error(
        "the server returned an HTML page ({bytes} bytes) instead of a checkpoint for {url}; \
         nothing was kept: open the address in a browser, download the file by hand and \
         pass it with --weights"
    )]
    Html {
        /// The address originally asked for.
        url: String,
        /// Size of the page.
        bytes: u64,
    },
    /// The caller's validation refused the downloaded file.
    #[error(
        "the file downloaded from {url} is not a usable checkpoint ({reason}); it was not kept"
    )]
    Rejected {
        /// The address originally asked for.
        url: String,
        /// The validator's explanation.
        reason: String,
    },
    /// A local file-system operation failed.
    #[error("could not {action} {}: {error}", path.display())]
    Io {
        /// What was being done (`write to`, `rename`, ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FetchError + 'a {
    move |error| FetchError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// Downloads the known checkpoint `name` into `<cache>/weights/` with
/// [`fetch_to`].
pub fn fetch_known(
    cache: &Path,
    name: &str,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
    validate: &dyn Fn(&Path) -> Result<(), String>,
) -> Result<Fetched, FetchError> {
    let known = find_known(name).ok_or_else(|| FetchError::UnknownCheckpoint {
        name: name.to_string(),
        known: known_names(),
    })?;
    let dest = weights_dir(cache).join(known.file_name);
    fetch_to(known.url, &dest, opts, progress, validate)
}

/// Downloads `url` to the file `dest`, creating its folder.
///
/// The body streams into `<dest>.part` beside `dest`. If that file already
/// exists, the download resumes it with `Range: bytes=N-` (a 206 answer is
/// appended; a 200 answer means the server ignored the range, so the file
/// restarts from zero; a 416 answer discards the partial file and starts
/// over). `progress(bytes_so_far, total)` is called as data arrive, `total`
/// being the full size when the server announced it.
///
/// When the body is complete, a body that looks like an HTML page is refused
/// (and deleted), then `validate` is called on the `.part` file (whose name
/// ends in `.part`, so judge it by content, not by extension); if it returns
/// `Err(reason)` the file is deleted too. Only a validated file is
/// synced to disk and renamed to `dest` (replacing any earlier one); its
/// SHA-256 is written to `<dest>.sha256` and returned.
///
/// A connection that drops or stalls mid-body keeps the `.part` file, so the
/// next call resumes it; every other failure leaves nothing behind.
pub fn fetch_to(
    url: &str,
    dest: &Path,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
    validate: &dyn Fn(&Path) -> Result<(), String>,
) -> Result<Fetched, FetchError> {
    let start = parse_http_url(url)?;
    if dest.file_name().is_none() {
        return Err(FetchError::Io {
            action: "download to",
            path: dest.to_path_buf(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        });
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io_err("create the folder", &dir))?;
    let part = with_suffix(dest, ".part");
    let agents = Agents::from_env(opts)?;

    // Open the response, restarting from zero at most once when the server
    // cannot honour the range.
    let mut restarted = false;
    let (response, offset, total) = loop {
        let mut offset = match fs::metadata(&part) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err("read", &part)(e)),
        };
        if offset > opts.max_bytes {
            remove_if_exists(&part)?;
            offset = 0;
        }
        let (response, host) = open(&agents, &start, url, offset, opts)?;
        let status = response.status();
        let content_length = header_u64(&response, "Content-Length");
        match status {
            200 => break (response, 0, content_length),
            206 => {
                let range = response
                    .header("Content-Range")
                    .and_then(parse_content_range);
                match range {
                    Some((first, total)) if first == offset => {
                        let total = total.or(content_length.map(|n| offset + n));
                        break (response, offset, total);
                    }
                    _ if offset > 0 && !restarted => {
                        // The range is not the one asked for: start over.
                        drop(response);
                        remove_if_exists(&part)?;
                        restarted = true;
                    }
                    _ => {
                        return Err(FetchError::Protocol {
                            host,
                            reason: format!(
                                "a partial response with Content-Range {:?} to a request for \
                                 bytes from {offset}",
                                response.header("Content-Range").unwrap_or("")
                            ),
                            url: url.to_string(),
                        })
                    }
                }
            }
            416 if offset > 0 && !restarted => {
                drop(response);
                remove_if_exists(&part)?;
                restarted = true;
            }
            _ => {
                return Err(FetchError::Http {
                    host,
                    status,
                    status_text: response.status_text().to_string(),
                    url: url.to_string(),
                })
            }
        }
    };

    if let Some(total) = total {
        if total > opts.max_bytes {
            drop(response);
            remove_if_exists(&part)?;
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                size: total,
                limit: opts.max_bytes,
            });
        }
    }
    let content_type = response.content_type().to_ascii_lowercase();

    let received = stream_body(response, &part, offset, total, url, opts, progress)?;
    if let Some(total) = total {
        if received < total {
            return Err(FetchError::Truncated {
                url: url.to_string(),
                part,
                received,
                expected: total,
            });
        }
        if received > total {
            remove_if_exists(&part)?;
            return Err(FetchError::Protocol {
                host: host_of(&start),
                reason: format!("{received} bytes arrived but {total} were announced"),
                url: url.to_string(),
            });
        }
    }

    // Checks on the complete body.
    let head = read_head(&part, 1024).map_err(io_err("read", &part))?;
    let html_type = content_type == "text/html" || content_type == "application/xhtml+xml";
    if looks_like_html(&head) || (html_type && !looks_like_checkpoint(&head)) {
        remove_if_exists(&part)?;
        return Err(FetchError::Html {
            url: url.to_string(),
            bytes: received,
        });
    }
    if let Err(reason) = validate(&part) {
        remove_if_exists(&part)?;
        return Err(FetchError::Rejected {
            url: url.to_string(),
            reason,
        });
    }

    // Keep it: hash, sync, rename, record the hash.
    let sha256 = {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&part)
            .map_err(io_err("open", &part))?;
        let sha = cnnspot_files::sha256_reader(&mut file).map_err(io_err("read", &part))?;
        file.sync_all().map_err(io_err("sync", &part))?;
        sha
    };
    let sidecar = sha256_sidecar(dest);
    remove_if_exists(&sidecar)?;
    fs::rename(&part, dest).map_err(io_err("rename the download to", dest))?;
    cnnspot_files::sync_folder(&dir);
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_atomically(&sidecar, format!("{sha256}  {file_name}\n").as_bytes())?;
    cnnspot_files::sync_folder(&dir);

    Ok(Fetched {
        path: dest.to_path_buf(),
        bytes: received,
        sha256,
        resumed_from: offset,
    })
}

/// Streams the response body into `part` starting at `offset` (truncating
/// the file there) and returns the file's final length.
fn stream_body(
    response: ureq::Response,
    part: &Path,
    offset: u64,
    total: Option<u64>,
    url: &str,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64, FetchError> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(io_err("create", part))?;
    file.set_len(offset).map_err(io_err("write to", part))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(io_err("write to", part))?;

    let mut written = offset;
    progress(written, total);
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(io_err("write to", part))?;
                drop(file);
                return Err(match (e.kind(), total) {
                    (io::ErrorKind::UnexpectedEof, Some(expected)) => FetchError::Truncated {
                        url: url.to_string(),
                        part: part.to_path_buf(),
                        received: written,
                        expected,
                    },
                    _ => FetchError::Interrupted {
                        url: url.to_string(),
                        part: part.to_path_buf(),
                        received: written,
                        reason: describe_io(&e),
                    },
                });
            }
        };
        written += n as u64;
        if written > opts.max_bytes {
            drop(file);
            remove_if_exists(part)?;
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                size: written,
                limit: opts.max_bytes,
            });
        }
        file.write_all(&buf[..n])
            .map_err(io_err("write to", part))?;
        progress(written, total);
    }
    file.flush().map_err(io_err("write to", part))?;
    Ok(written)
}

/// Sends the GET (with a range from `offset` when > 0), following redirects
/// by hand so that the range and the limits apply to every hop. Returns the
/// first non-redirect response, whatever its status, and its host.
fn open(
    agents: &Agents,
    start: &Url,
    original: &str,
    offset: u64,
    opts: &FetchOptions,
) -> Result<(ureq::Response, String), FetchError> {
    let mut current = start.clone();
    let mut seen = vec![current.to_string()];
    let mut hops = 0u32;
    loop {
        let mut request = agents
            .for_url(&current)
            .get(current.as_str())
            .set("Accept-Encoding", "identity");
        if offset > 0 {
            request = request.set("Range", &format!("bytes={offset}-"));
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(transport_error(&t, &current, original)),
        };
        let status = response.status();
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Ok((response, host_of(&current)));
        }
        let Some(location) = response.header("Location").map(str::to_string) else {
            return Err(FetchError::Protocol {
                host: host_of(&current),
                reason: format!("a {status} redirect without a Location header"),
                url: original.to_string(),
            });
        };
        drop(response);
        let bad = |reason: String| FetchError::BadRedirect {
            from: current.to_string(),
            location: location.clone(),
            reason,
        };
        let mut next = current.join(&location).map_err(|e| bad(e.to_string()))?;
        next.set_fragment(None);
        if !matches!(next.scheme(), "http" | "https") {
            return Err(bad(format!("unsupported scheme {:?}", next.scheme())));
        }
        if current.scheme() == "https" && next.scheme() == "http" {
            return Err(bad("it would downgrade https to plain http".to_string()));
        }
        if seen.iter().any(|s| s == next.as_str()) {
            return Err(FetchError::RedirectLoop {
                url: original.to_string(),
                location: next.to_string(),
            });
        }
        hops += 1;
        if hops > opts.max_redirects {
            return Err(FetchError::TooManyRedirects {
                url: original.to_string(),
                max: opts.max_redirects,
            });
        }
        seen.push(next.to_string());
        current = next;
    }
}

fn parse_http_url(url: &str) -> Result<Url, FetchError> {
    let parsed = Url::parse(url).map_err(|e| FetchError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::InvalidUrl {
            url: url.to_string(),
            reason: format!("the scheme must be http or https, not {}", parsed.scheme()),
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::InvalidUrl {
            url: url.to_string(),
            reason: "it has no host".to_string(),
        });
    }
    Ok(parsed)
}

/// `host` or `host:port` of an address, for messages.
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("the server");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn transport_error(t: &ureq::Transport, current: &Url, original: &str) -> FetchError {
    use ureq::ErrorKind as K;
    let detail = match std::error::Error::source(t) {
        Some(source) => {
            // Prefer the underlying I/O error's plain wording.
            match source.downcast_ref::<io::Error>() {
                Some(e)
                    if e.kind() == io::ErrorKind::InvalidData && current.scheme() == "https" =>
                {
                    format!("the secure (TLS) connection failed ({e})")
                }
                Some(e) => describe_io(e),
                None => source.to_string(),
            }
        }
        None => t
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| t.kind().to_string()),
    };
    let host = host_of(current);
    match t.kind() {
        K::InvalidUrl | K::UnknownScheme => FetchError::InvalidUrl {
            url: current.to_string(),
            reason: detail,
        },
        K::BadStatus | K::BadHeader | K::HTTP => FetchError::Protocol {
            host,
            reason: detail,
            url: original.to_string(),
        },
        K::Dns => FetchError::Unreachable {
            host,
            reason: format!("the name does not resolve, so the network may be down ({detail})"),
            url: original.to_string(),
        },
        _ => FetchError::Unreachable {
            host,
            reason: detail,
            url: original.to_string(),
        },
    }
}

/// Plain wording for common I/O errors.
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".to_string(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_string(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => "the connection closed early".to_string(),
        _ => e.to_string(),
    }
}

fn header_u64(response: &ureq::Response, name: &str) -> Option<u64> {
    response.header(name)?.trim().parse().ok()
}

/// Parses `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`) into (FIRST, TOTAL).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    if last < first {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => {
            let t: u64 = t.parse().ok()?;
            if last >= t {
                return None;
            }
            Some(t)
        }
    };
    Some((first, total))
}

/// Whether the start of a body looks like an HTML (or XHTML) document.
fn looks_like_html(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let text: Vec<u8> = head[start..]
        .iter()
        .take(64)
        .map(u8::to_ascii_lowercase)
        .collect();
    [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<!--",
        b"<script",
        b"<meta",
        b"<title",
        b"<?xml",
    ]
    .iter()
    .any(|tag| text.starts_with(tag))
}

/// Whether the start of a body looks like a checkpoint (zip archive, pickle,
/// or safetensors header).
fn looks_like_checkpoint(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
        || head.first() == Some(&0x80)
        || (head.len() > 8 && head[8] == b'{')
}

fn read_head(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    File::open(path)?.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), FetchError> {
    cnnspot_files::write_atomic(path, contents).map_err(io_err("write", path))
}

/// The HTTP agents: a direct one, and one per proxy named in the environment
/// (`https_proxy`/`HTTPS_PROXY`, `http_proxy`/`HTTP_PROXY`,
/// `all_proxy`/`ALL_PROXY`), skipped for loopback hosts and those matching
/// `no_proxy`/`NO_PROXY`.
struct Agents {
    direct: ureq::Agent,
    https: Option<ureq::Agent>,
    http: Option<ureq::Agent>,
    no_proxy: String,
}

impl Agents {
    fn from_env(opts: &FetchOptions) -> Result<Agents, FetchError> {
        let var = |names: &[&str]| {
            names.iter().find_map(|n| {
                std::env::var(n)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (n.to_string(), v))
            })
        };
        let proxied = |found: Option<(String, String)>| -> Result<Option<ureq::Agent>, FetchError> {
            let Some((var, value)) = found else {
                return Ok(None);
            };
            let proxy = ureq::Proxy::new(&value).map_err(|e| FetchError::InvalidProxy {
                var,
                value: value.clone(),
                reason: e.to_string(),
            })?;
            Ok(Some(builder(opts).proxy(proxy).build()))
        };
        Ok(Agents {
            direct: builder(opts).build(),
            https: proxied(var(&[
                "https_proxy",
                "HTTPS_PROXY",
                "all_proxy",
                "ALL_PROXY",
            ]))?,
            http: proxied(var(&["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]))?,
            no_proxy: var(&["no_proxy", "NO_PROXY"])
                .map(|(_, v)| v)
                .unwrap_or_default(),
        })
    }

    fn for_url(&self, url: &Url) -> &ureq::Agent {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        };
        match proxy {
            Some(agent) if !bypass_proxy(&self.no_proxy, url.host_str().unwrap_or("")) => agent,
            _ => &self.direct,
        }
    }
}

fn builder(opts: &FetchOptions) -> ureq::AgentBuilder {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(opts.timeout)
        .timeout_read(opts.timeout)
        .timeout_write(opts.timeout)
        .user_agent(concat!("cnnspot/", env!("CARGO_PKG_VERSION")))
}

/// Whether `host` must be reached directly: loopback, or matched by the
/// comma-separated `no_proxy` list (`*`, exact names, domain suffixes with or
/// without a leading dot).
fn bypass_proxy(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host == "localhost" || host == "::1" || host.starts_with("127.") {
        return true;
    }
    no_proxy
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches('.');
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_table() {
        assert_eq!(
            find_known(DEFAULT_CHECKPOINT).unwrap().name,
            DEFAULT_CHECKPOINT
        );
        for k in KNOWN {
            assert_eq!(k.file_name, format!("{}.pth", k.name));
            assert!(k.url.starts_with("https://www.dropbox.com/s/"));
            assert!(k.url.ends_with(&format!("/{}?dl=1", k.file_name)));
            assert_eq!(find_known(k.file_name), Some(k));
            parse_http_url(k.url).unwrap();
        }
        assert!(find_known("nope").is_none());
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-3904/3905"),
            Some((100, Some(3905)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 10-9/20"), None);
        assert_eq!(parse_content_range("bytes 0-20/20"), None);
        assert_eq!(parse_content_range("bytes */20"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn html_sniffing() {
        assert!(looks_like_html(b"<!DOCTYPE html><html>"));
        assert!(looks_like_html(b"\xEF\xBB\xBF\n  <HTML lang=en>"));
        assert!(looks_like_html(b"\r\n<!-- comment --><html>"));
        assert!(!looks_like_html(b"PK\x03\x04<html>"));
        assert!(!looks_like_html(b"\x80\x02}q\x00"));
        assert!(!looks_like_html(b""));
        assert!(looks_like_checkpoint(b"PK\x03\x04rest"));
        assert!(looks_like_checkpoint(b"\x80\x02"));
        assert!(!looks_like_checkpoint(b"<html>"));
    }

    #[test]
    fn no_proxy_rules() {
        assert!(bypass_proxy("", "127.0.0.1"));
        assert!(bypass_proxy("", "localhost"));
        assert!(bypass_proxy("", "[::1]"));
        assert!(!bypass_proxy("", "www.dropbox.com"));
        assert!(bypass_proxy("*", "www.dropbox.com"));
        assert!(bypass_proxy("example.org, dropbox.com", "www.dropbox.com"));
        assert!(bypass_proxy(".dropbox.com", "www.dropbox.com"));
        assert!(bypass_proxy("DROPBOX.COM", "dropbox.com"));
        assert!(!bypass_proxy("box.com", "www.dropbox.com"));
    }

    #[test]
    fn cache_paths() {
        let cache = Path::new("/c");
        assert_eq!(
            checkpoint_path(cache, "blur_jpg_prob0.1"),
            Some(PathBuf::from("/c/weights/blur_jpg_prob0.1.pth"))
        );
        assert_eq!(
            checkpoint_path(cache, "mine"),
            Some(PathBuf::from("/c/weights/mine.pth"))
        );
        assert_eq!(
            checkpoint_path(cache, "mine.safetensors"),
            Some(PathBuf::from("/c/weights/mine.safetensors"))
        );
        assert_eq!(checkpoint_path(cache, "../x"), None);
        assert_eq!(checkpoint_path(cache, ""), None);
        assert_eq!(
            sha256_sidecar(Path::new("/c/weights/a.pth")),
            PathBuf::from("/c/weights/a.pth.sha256")
        );
    }
}
