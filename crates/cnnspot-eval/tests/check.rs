//! `dataset check`: shortcuts between real and fake are flagged, honest
//! datasets are not.

use std::path::Path;

use cnnspot_eval::check::{
    categorical_separability, check_dataset, threshold_separability, Counts,
};
use cnnspot_eval::dataset::Dataset;
use cnnspot_testdata::require_shared;

#[test]
fn dev_set_stylegan2_is_flagged_and_cyclegan_is_not() {
    let shared = require_shared!();
    let d = Dataset::discover(&shared.join("data/dev")).unwrap();
    let check = check_dataset(&d, || {});
    let g = |name: &str| check.generators.iter().find(|g| g.name == name).unwrap();

    let sg = g("stylegan2_ffhq_rosinality");
    assert_eq!((sg.real.images, sg.fake.images), (12, 12));
    assert_eq!(sg.real.formats.get("JPEG"), Some(&12));
    assert_eq!(sg.fake.formats.get("PNG"), Some(&12));
    assert_eq!(sg.real.sizes.get("512x512"), Some(&12));
    let format = sg
        .shortcuts
        .iter()
        .find(|s| s.attribute == "file format")
        .unwrap();
    assert_eq!(format.balanced_accuracy, 1.0);
    assert!(
        !sg.shortcuts.iter().any(|s| s.attribute == "image size"),
        "sizes are equal"
    );

    let cg = g("cyclegan_horse2zebra_student");
    assert_eq!((cg.real.images, cg.fake.images), (15, 15));
    assert!(cg.shortcuts.is_empty(), "{:?}", cg.shortcuts);
    assert!(g("superres_espcn_x4_bsd100").shortcuts.is_empty());
    assert!(g("pix2pix_maps").shortcuts.is_empty());

    // Half of the face-swap fakes are larger than every real face crop.
    let ff = g("faceforensics_neuraltextures_face2face");
    assert!(ff.shortcuts.iter().any(|s| s.attribute == "image size"));

    let text = check.text();
    assert!(
        text.contains("WARNING: real and fake differ in file format: real JPEG 12; fake PNG 12"),
        "{text}"
    );
    assert!(text.contains("142 images (71 real, 71 fake)"), "{text}");
}

fn png(root: &Path, rel: &str, w: u32, h: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    image::RgbImage::new(w, h).save(&p).unwrap();
}

#[test]
fn size_differences_are_flagged_on_a_made_up_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for i in 0..4 {
        png(r, &format!("sizes/0_real/{i}.png"), 64, 64);
        png(r, &format!("sizes/1_fake/{i}.png"), 32, 32);
        png(r, &format!("fair/0_real/{i}.png"), 40, 30 + i);
        png(r, &format!("fair/1_fake/{i}.png"), 40, 30 + i);
    }
    std::fs::write(r.join("fair/1_fake/broken.png"), b"nope").unwrap();
    let check = check_dataset(&Dataset::discover(r).unwrap(), || {});
    assert_eq!(check.flagged(), vec!["sizes"]);
    let fair = &check.generators[0];
    assert_eq!(fair.fake.images, 5);
    assert_eq!(fair.fake.unreadable.len(), 1);
    assert!(fair.fake.unreadable[0].0.ends_with("broken.png"));
}

#[test]
fn separability_measures() {
    let c =
        |v: &[(&str, usize)]| -> Counts { v.iter().map(|(k, n)| (k.to_string(), *n)).collect() };
    assert_eq!(
        categorical_separability(&c(&[("PNG", 5)]), &c(&[("PNG", 9)])),
        0.5
    );
    assert_eq!(
        categorical_separability(&c(&[("JPEG", 5)]), &c(&[("PNG", 9)])),
        1.0
    );
    // Half of the reals are JPEG: calling JPEG real, PNG fake is right on
    // 50% of reals and 100% of fakes.
    assert_eq!(
        categorical_separability(&c(&[("JPEG", 2), ("PNG", 2)]), &c(&[("PNG", 4)])),
        0.75
    );
    assert_eq!(threshold_separability(&[1, 2, 3], &[4, 5]), 1.0);
    assert_eq!(threshold_separability(&[4, 5], &[1, 2, 3]), 1.0);
    assert_eq!(threshold_separability(&[1, 5], &[1, 5]), 0.5);
}
