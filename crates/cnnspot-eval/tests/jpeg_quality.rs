//! JPEG quality and subsampling read from files written by Pillow 13 (its
//! libjpeg-turbo) at known settings; see tests/data/README.md.

use std::path::PathBuf;

use cnnspot_eval::check::inspect;
use cnnspot_eval::jpeg::{read_header, Quality};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn known_qualities_are_recovered_exactly() {
    for (file, q, sub) in [
        ("q10_420.jpg", 10, "4:2:0"),
        ("q50_420.jpg", 50, "4:2:0"),
        ("q75_420.jpg", 75, "4:2:0"),
        ("q90_420.jpg", 90, "4:2:0"),
        ("q95_420.jpg", 95, "4:2:0"),
        ("q100_420.jpg", 100, "4:2:0"),
        ("q85_444.jpg", 85, "4:4:4"),
        ("q70_422.jpg", 70, "4:2:2"),
        ("q60_grey.jpg", 60, "grey"),
        ("q80_progressive.jpg", 80, "4:2:0"),
    ] {
        let h = read_header(&data(file)).unwrap();
        assert_eq!(
            h.quality,
            Some(Quality {
                quality: q,
                exact: true
            }),
            "{file}"
        );
        assert_eq!(h.subsampling.as_deref(), Some(sub), "{file}");
        assert_eq!(h.progressive, file.contains("progressive"), "{file}");
    }
}

#[test]
fn tables_of_no_ijg_quality_are_approximate() {
    // Flat tables (3 for luma, 5 for chroma) that no IJG quality produces.
    let h = read_header(&data("custom_tables.jpg")).unwrap();
    let q = h.quality.unwrap();
    assert!(!q.exact, "{q}");
    assert!(q.to_string().starts_with("~q"));
    assert_eq!(h.tables[0], Some([3; 64]));
    assert_eq!(h.tables[1], Some([5; 64]));
}

#[test]
fn inspect_reads_headers_of_jpeg_and_png() {
    let i = inspect(&data("q75_420.jpg")).unwrap();
    assert_eq!((i.format.as_str(), i.width, i.height), ("JPEG", 24, 24));
    assert_eq!(i.encoding(), "JPEG q75 4:2:0");
    assert_eq!(inspect(&data("q60_grey.jpg")).unwrap().colour, "L8");

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.jpg"); // the content decides, not the name
    image::RgbImage::new(7, 5)
        .save_with_format(&png, image::ImageFormat::Png)
        .unwrap();
    let i = inspect(&png).unwrap();
    assert_eq!(
        (i.format.as_str(), i.width, i.height, i.colour.as_str()),
        ("PNG", 7, 5, "RGB8")
    );
    assert_eq!(i.jpeg_quality, None);

    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    assert!(inspect(&junk).is_err());
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &std::fs::read(data("q75_420.jpg")).unwrap()[..40]).unwrap();
    assert!(read_header(&cut).is_err());
}
