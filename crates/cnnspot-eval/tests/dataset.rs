//! Finding generators, classes and labels in the ForenSynths layout.

use std::path::Path;

use cnnspot_eval::dataset::{Dataset, Label};

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"x").unwrap();
}

fn counts(d: &Dataset) -> Vec<(String, usize, usize)> {
    d.generators
        .iter()
        .map(|g| (g.name.clone(), g.count(Label::Real), g.count(Label::Fake)))
        .collect()
}

#[test]
fn single_folder_and_multi_class_generators() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    // Single folder.
    touch(r, "biggan/0_real/a.png");
    touch(r, "biggan/0_real/b.JPG");
    touch(r, "biggan/1_fake/c.png");
    // Classes, one of them nested two levels deep: all summed per generator.
    touch(r, "progan/airplane/0_real/1.png");
    touch(r, "progan/airplane/1_fake/1.png");
    touch(r, "progan/airplane/1_fake/2.png");
    touch(r, "progan/cat/0_real/1.png");
    touch(r, "progan/cat/1_fake/1.png");
    touch(r, "progan/more/deep/0_real/1.png");
    touch(r, "progan/more/deep/1_fake/1.webp");
    // Not images, hidden files, and a folder that is no generator.
    touch(r, "progan/cat/0_real/notes.txt");
    touch(r, "progan/cat/0_real/.hidden.png");
    touch(r, "docs/readme.png");
    touch(r, "manifest.csv");

    let d = Dataset::discover(r).unwrap();
    assert_eq!(
        counts(&d),
        vec![("biggan".into(), 2, 1), ("progan".into(), 3, 4)]
    );
    let progan = &d.generators[1];
    assert_eq!(progan.classes, vec!["airplane", "cat", "more/deep"]);
    assert_eq!(progan.ignored.len(), 1, "notes.txt");
    assert!(progan.warnings.is_empty(), "{:?}", progan.warnings);
    let deep = progan
        .items
        .iter()
        .find(|i| i.key == "progan/more/deep/1_fake/1.webp")
        .unwrap();
    assert_eq!(
        (deep.label, deep.class.as_str()),
        (Label::Fake, "more/deep")
    );
    // Labels come from the folder, keys are relative and sorted.
    let biggan = &d.generators[0];
    let keys: Vec<&str> = biggan.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "biggan/0_real/a.png",
            "biggan/0_real/b.JPG",
            "biggan/1_fake/c.png"
        ]
    );
    assert_eq!(biggan.items[2].label, Label::Fake);
    assert_eq!(d.len(), 10);
}

#[test]
fn missing_label_folders_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    touch(r, "onlyfake/1_fake/a.png");
    touch(r, "cyclegan/horse/0_real/a.png");
    touch(r, "cyclegan/horse/1_fake/a.png");
    touch(r, "cyclegan/zebra/1_fake/a.png");
    let d = Dataset::discover(r).unwrap();
    assert_eq!(
        counts(&d),
        vec![("cyclegan".into(), 1, 2), ("onlyfake".into(), 0, 1)]
    );
    assert_eq!(
        d.generators[0].warnings,
        vec!["cyclegan/zebra has no 0_real folder"]
    );
    let w = &d.generators[1].warnings;
    assert!(
        w.iter().any(|w| w == "onlyfake has no 0_real folder"),
        "{w:?}"
    );
    assert!(w.iter().any(|w| w.contains("no real images")), "{w:?}");
}

#[test]
fn a_root_holding_label_folders_is_one_generator() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("stylegan");
    touch(&g, "0_real/a.png");
    touch(&g, "1_fake/b.png");
    let d = Dataset::discover(&g).unwrap();
    assert_eq!(counts(&d), vec![("stylegan".into(), 1, 1)]);
    assert_eq!(d.generators[0].items[0].key, "0_real/a.png");
}

#[test]
fn selection_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    touch(r, "a/0_real/x.png");
    touch(r, "a/1_fake/x.png");
    touch(r, "b/0_real/x.png");
    touch(r, "b/1_fake/x.png");
    let mut d = Dataset::discover(r).unwrap();
    d.select(&["b".into(), "a".into()]).unwrap();
    let names: Vec<&str> = d.generators.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["b", "a"], "the order given is kept");
    let err = d.select(&["c".into()]).unwrap_err().to_string();
    assert!(
        err.contains("no generator c") && err.contains("(found: b, a)"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    touch(empty.path(), "images/x.png");
    let err = Dataset::discover(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no 0_real or 1_fake folder"), "{err}");
    let err = Dataset::discover(&r.join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a folder"), "{err}");
}
