//! Finding the images of a dataset in the ForenSynths layout:
//!
//! ```text
//! root/<generator>/[<class>/]0_real/*.png|jpg
//! root/<generator>/[<class>/]1_fake/*.png|jpg
//! ```
//!
//! The label comes from the folder name (0 real, 1 fake), the generator is
//! the first level under the root, and anything between the generator and
//! the label folder is the class (ProGAN's 20 LSUN classes, CycleGAN's
//! horse/zebra/...). A root that itself holds `0_real`/`1_fake` is one
//! generator named after the root folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};

/// Image files are picked by extension, as everywhere in cnnspot; other
/// files in label folders are counted as ignored.
pub use cnnspot_core::image::{is_image_name, IMAGE_EXTENSIONS};

/// Real (0) or fake (1), as the folder names say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    /// `0_real`
    Real,
    /// `1_fake`
    Fake,
}

impl Label {
    /// 0 for real, 1 for fake (the reference's `y_true`).
    pub fn as_u8(self) -> u8 {
        match self {
            Label::Real => 0,
            Label::Fake => 1,
        }
    }

    /// The inverse of [`Label::as_u8`].
    pub fn from_u8(v: u8) -> Option<Label> {
        match v {
            0 => Some(Label::Real),
            1 => Some(Label::Fake),
            _ => None,
        }
    }

    /// "real" or "fake".
    pub fn name(self) -> &'static str {
        match self {
            Label::Real => "real",
            Label::Fake => "fake",
        }
    }

    fn from_folder(name: &str) -> Option<Label> {
        match name {
            "0_real" => Some(Label::Real),
            "1_fake" => Some(Label::Fake),
            _ => None,
        }
    }
}

/// One image of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The file.
    pub path: PathBuf,
    /// The path relative to the dataset root, with `/` separators: the key
    /// under which its score is stored.
    pub key: String,
    /// Its label.
    pub label: Label,
    /// The class folder(s) between generator and label, `""` when none.
    pub class: String,
}

/// A generator: every image under `root/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    /// The folder name.
    pub name: String,
    /// Its class folders (empty for the single-folder layout), sorted.
    pub classes: Vec<String>,
    /// Its images, sorted by key.
    pub items: Vec<Item>,
    /// Files in label folders without an image extension (not scored).
    pub ignored: Vec<PathBuf>,
    /// Layout problems worth telling the user (a class with no `0_real`...).
    pub warnings: Vec<String>,
}

impl Generator {
    /// Images with this label.
    pub fn count(&self, label: Label) -> usize {
        self.items.iter().filter(|i| i.label == label).count()
    }
}

/// A dataset in the ForenSynths layout.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The root folder, as given.
    pub root: PathBuf,
    /// Generators in name order.
    pub generators: Vec<Generator>,
}

impl Dataset {
    /// Walks `root` and finds its generators, classes and images. Folders
    /// with no `0_real`/`1_fake` below them are not generators and are
    /// skipped; an error is returned only when nothing at all is found or a
    /// folder cannot be read.
    pub fn discover(root: &Path) -> Result<Dataset> {
        if !root.is_dir() {
            return Err(EvalError::NotADataset {
                root: root.to_path_buf(),
                why: "it is not a folder".into(),
            });
        }
        let mut generators = Vec::new();
        if has_label_folder(root)? {
            let name = root
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "dataset".to_string());
            generators.push(scan_generator(root, root, name)?);
        } else {
            for dir in sorted_subdirs(root)? {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                generators.push(scan_generator(root, &dir, name)?);
            }
        }
        // A folder with no label folder below it is not a generator.
        generators.retain(|g| !g.items.is_empty() || !g.warnings.is_empty());
        if generators.is_empty() {
            return Err(EvalError::NotADataset {
                root: root.to_path_buf(),
                why: "no 0_real or 1_fake folder with images was found under it \
                      (expected root/<generator>/[<class>/]{0_real,1_fake}/)"
                    .into(),
            });
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            generators,
        })
    }

    /// Keeps only the named generators, in the order given. An unknown name
    /// is an error listing the known ones.
    pub fn select(&mut self, names: &[String]) -> Result<()> {
        let mut picked = Vec::new();
        for name in names {
            match self.generators.iter().find(|g| &g.name == name) {
                Some(g) => picked.push(g.clone()),
                None => {
                    return Err(EvalError::UnknownGenerator {
                        name: name.clone(),
                        root: self.root.clone(),
                        known: self
                            .generators
                            .iter()
                            .map(|g| g.name.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
        self.generators = picked;
        Ok(())
    }

    /// Number of images over all generators.
    pub fn len(&self) -> usize {
        self.generators.iter().map(|g| g.items.len()).sum()
    }

    /// Whether there is no image at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|s| s.starts_with('.'))
}

fn read_dir_error(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Io {
        path: path.to_path_buf(),
        what: "cannot read the folder",
        source: std::io::Error::other(e.to_string()),
    }
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_dir_error(dir, e))? {
        let entry = entry.map_err(|e| read_dir_error(dir, e))?;
        let path = entry.path();
        if !is_hidden(&entry.file_name()) && path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn has_label_folder(dir: &Path) -> Result<bool> {
    Ok(sorted_subdirs(dir)?.iter().any(|d| {
        d.file_name()
            .and_then(|n| n.to_str())
            .and_then(Label::from_folder)
            .is_some()
    }))
}

fn rel_key(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every folder at or below `gen_dir` that holds a label folder is a class
/// (the generator folder itself being the class `""`); label folders are
/// not searched for further classes.
fn scan_generator(root: &Path, gen_dir: &Path, name: String) -> Result<Generator> {
    let mut items = Vec::new();
    let mut ignored = Vec::new();
    // class -> which labels it has
    let mut classes: BTreeMap<String, [bool; 2]> = BTreeMap::new();
    let mut stack = vec![gen_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for sub in sorted_subdirs(&dir)? {
            let folder = sub
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            match Label::from_folder(&folder) {
                Some(label) => {
                    let class = rel_key(gen_dir, &dir);
                    classes.entry(class.clone()).or_default()[label.as_u8() as usize] = true;
                    for entry in walkdir::WalkDir::new(&sub)
                        .follow_links(true)
                        .sort_by_file_name()
                        .into_iter()
                        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()))
                    {
                        let entry = entry.map_err(|e| read_dir_error(&sub, e))?;
                        if !entry.file_type().is_file() {
                            continue;
                        }
                        let path = entry.into_path();
                        if is_image_name(&path) {
                            items.push(Item {
                                key: rel_key(root, &path),
                                path,
                                label,
                                class: class.clone(),
                            });
                        } else {
                            ignored.push(path);
                        }
                    }
                }
                None => stack.push(sub),
            }
        }
    }
    items.sort_by(|a, b| a.key.cmp(&b.key));
    let mut warnings = Vec::new();
    for (class, has) in &classes {
        let place = if class.is_empty() {
            name.clone()
        } else {
            format!("{name}/{class}")
        };
        if !has[0] {
            warnings.push(format!("{place} has no 0_real folder"));
        }
        if !has[1] {
            warnings.push(format!("{place} has no 1_fake folder"));
        }
    }
    if !classes.is_empty() && items.is_empty() {
        warnings.push(format!("{name} has no image files"));
    }
    let generator = Generator {
        name,
        classes: classes.keys().filter(|c| !c.is_empty()).cloned().collect(),
        items,
        ignored,
        warnings,
    };
    for label in [Label::Real, Label::Fake] {
        if !generator.items.is_empty() && generator.count(label) == 0 {
            let mut g = generator;
            g.warnings.push(format!(
                "{} has no {} images: its AP or accuracies are undefined",
                g.name,
                label.name()
            ));
            return Ok(g);
        }
    }
    Ok(generator)
}
