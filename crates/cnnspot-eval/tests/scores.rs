//! The scores store: resuming after an interrupt, refusing to mix runs.

use std::path::PathBuf;

use cnnspot_eval::scores::{read_rows, CheckpointId, RunMeta, ScoreRow, ScoreStore, Settings};

fn meta(root: &std::path::Path, crop: Option<u32>, sha: &str) -> RunMeta {
    RunMeta::new(
        root,
        Settings {
            crop,
            max_pixels: 1000,
            perturbation: None,
            precision: None,
        },
        CheckpointId {
            path: PathBuf::from("w.pth"),
            sha256: sha.into(),
            arch: "resnet50".into(),
            format: "PyTorch zip".into(),
            parameters: 1,
        },
    )
}

fn row(path: &str, p: f64) -> ScoreRow {
    ScoreRow {
        path: path.into(),
        generator: "g".into(),
        class: String::new(),
        label: 1,
        probability: Some(p),
        logit: Some((p / (1.0 - p)).ln()),
        width: Some(8),
        height: Some(8),
        error: None,
    }
}

#[test]
fn appended_rows_survive_and_a_cut_line_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let m = meta(dir.path(), Some(224), "aa");
    {
        let mut s = ScoreStore::open(&out, &m).unwrap();
        assert!(s.existing().is_empty());
        s.append(&row("g/1_fake/a.png", 0.25)).unwrap();
        s.append(&row("g/1_fake/b.png", 0.75)).unwrap();
    }
    // An interrupt in the middle of a third row.
    let file = out.join("scores.jsonl");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(br#"{"path":"g/1_fake/c.png","gener"#);
    std::fs::write(&file, &bytes).unwrap();

    let mut s = ScoreStore::open(&out, &m).unwrap();
    assert_eq!(s.existing().len(), 2);
    assert_eq!(s.existing()["g/1_fake/b.png"].probability, Some(0.75));
    s.append(&row("g/1_fake/c.png", 0.5)).unwrap();
    s.append(&row("g/1_fake/a.png", 0.125)).unwrap();
    drop(s);
    let (rows, _) = read_rows(&file).unwrap();
    let got: Vec<(&str, f64)> = rows
        .iter()
        .map(|r| (r.path.as_str(), r.probability.unwrap()))
        .collect();
    // A repeated path: the later row wins, in the place of the first.
    assert_eq!(
        got,
        [
            ("g/1_fake/a.png", 0.125),
            ("g/1_fake/b.png", 0.75),
            ("g/1_fake/c.png", 0.5)
        ]
    );
    assert!(std::fs::read_to_string(&file).unwrap().ends_with('\n'));
}

#[test]
fn other_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut s = ScoreStore::open(&out, &meta(dir.path(), Some(224), "aa")).unwrap();
    s.append(&row("g/1_fake/a.png", 0.25)).unwrap();
    drop(s);
    let err = ScoreStore::open(&out, &meta(dir.path(), None, "aa"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("made with crop 224, not no crop"), "{err}");
    let err = ScoreStore::open(&out, &meta(dir.path(), Some(224), "bb"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weights") && err.contains("sha256 aa"),
        "{err}"
    );
    let mut blurred = meta(dir.path(), Some(224), "aa");
    blurred.settings.perturbation = Some("blur 2".into());
    let err = ScoreStore::open(&out, &blurred).unwrap_err().to_string();
    assert!(
        err.contains("made with no perturbation, not blur 2"),
        "{err}"
    );
    // Scores without their description are refused too.
    std::fs::remove_file(out.join("scores.meta.json")).unwrap();
    let err = ScoreStore::open(&out, &meta(dir.path(), Some(224), "aa"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("without scores.meta.json"), "{err}");
}

#[test]
fn a_bad_line_in_the_middle_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scores.jsonl");
    let good = serde_json::to_string(&row("g/1_fake/a.png", 0.5)).unwrap();
    std::fs::write(&file, format!("{good}\nnot json\n{good}\n")).unwrap();
    let err = read_rows(&file).unwrap_err().to_string();
    assert!(err.contains("scores.jsonl line 2"), "{err}");
}
