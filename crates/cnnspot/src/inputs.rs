//! Turning the paths, folders and globs on the command line into files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cnnspot_core::image::is_image_name;

fn is_hidden(entry: &walkdir::DirEntry) -> bool {
    entry.depth() > 0
        && entry
            .file_name()
            .to_str()
            .is_some_and(|s| s.starts_with('.'))
}

/// Expands each argument: a file as itself, a folder recursively (image
/// files only, or every file with `all_files`; hidden entries skipped;
/// sorted), and a pattern with `*`, `?` or `[` as a glob. An argument that
/// matches nothing is an error, so a typo is not silently ignored.
pub fn expand(args: &[String], all_files: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if path.is_dir() {
            let mut found = Vec::new();
            for entry in walkdir::WalkDir::new(path)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| !is_hidden(e))
            {
                let entry = entry.with_context(|| format!("cannot read folder {arg}"))?;
                if entry.file_type().is_file() && (all_files || is_image_name(entry.path())) {
                    found.push(entry.into_path());
                }
            }
            found.sort();
            out.extend(found);
        } else if path.exists() {
            out.push(path.to_path_buf());
        } else if arg.contains(['*', '?', '[']) {
            let mut found = Vec::new();
            let shell_like = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            for entry in glob::glob_with(arg, shell_like)
                .with_context(|| format!("bad glob pattern {arg}"))?
            {
                let p = entry.with_context(|| format!("cannot read a match of {arg}"))?;
                if p.is_file() {
                    found.push(p);
                }
            }
            if found.is_empty() {
                bail!("the pattern {arg} matches no file");
            }
            found.sort();
            out.extend(found);
        } else {
            bail!("{arg}: no such file or folder");
        }
    }
    Ok(out)
}

/// The name under which `--shard` hashes a file that [`expand`] found for
/// `args`: its path relative to the folder argument it was found in (so
/// that tasks mounting the folder at different places agree), or the path
/// as given; `/`-separated.
pub fn shard_key(args: &[String], path: &Path) -> String {
    let relative = args
        .iter()
        .map(Path::new)
        .filter(|a| a.is_dir())
        .find_map(|a| path.strip_prefix(a).ok())
        .unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_globs_and_files_expand() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for name in ["a.png", "b.JPG", "notes.txt", ".hidden.png"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(sub.join("c.webp"), b"x").unwrap();
        let root = dir.path().to_str().unwrap().to_string();

        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names(expand(std::slice::from_ref(&root), false).unwrap()),
            vec!["a.png", "b.JPG", "sub/c.webp"]
        );
        assert_eq!(
            names(expand(std::slice::from_ref(&root), true).unwrap()),
            vec!["a.png", "b.JPG", "notes.txt", "sub/c.webp"]
        );
        assert_eq!(
            names(expand(&[format!("{root}/*.png")], false).unwrap()),
            vec!["a.png"]
        );
        // A file named explicitly is kept whatever its extension.
        let txt = format!("{root}/notes.txt");
        assert_eq!(names(expand(&[txt], false).unwrap()), vec!["notes.txt"]);
        assert!(expand(&[format!("{root}/missing.png")], false).is_err());
        assert!(expand(&[format!("{root}/*.gif")], false).is_err());
    }
}
