//! The augmentation pipeline: presets, independence of the draws,
//! determinism, the validation variant.

use cnnspot_augment::rand::rngs::ChaCha8Rng;
use cnnspot_augment::rand::SeedableRng;
use cnnspot_augment::{
    augment_train, augment_val, center_crop, gaussian_blur, jpeg_roundtrip, load_rgb,
    resize_shorter, sample_rng, AugmentConfig, AugmentError, Interp, JpegEncoder, RgbImage,
    PRESETS, VALIDATION_EPOCH,
};

fn test_image(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
            if (x / 3 + y / 3) % 2 == 0 { 200 } else { 40 },
        ])
    })
}

#[test]
fn presets_have_the_reference_values() {
    let all_encoders = vec![JpegEncoder::PureRust, JpegEncoder::LibjpegTurbo];
    let expected = [
        ("no-aug", 0.0, 0.0),
        ("blur", 0.5, 0.0),
        ("jpeg", 0.0, 0.5),
        ("blur+jpeg-0.5", 0.5, 0.5),
        ("blur+jpeg-0.1", 0.1, 0.1),
    ];
    assert_eq!(PRESETS.len(), expected.len());
    for (name, blur_prob, jpg_prob) in expected {
        assert!(PRESETS.contains(&name));
        let cfg = AugmentConfig::preset(name).expect(name);
        // The reference's train.py flags: --blur_sig 0.0,3.0 --jpg_qual 30,100
        // --jpg_method cv2,pil, --loadSize 256 --cropSize 224, bilinear, flips.
        assert_eq!(cfg.blur_prob, blur_prob, "{name}");
        assert_eq!(cfg.jpg_prob, jpg_prob, "{name}");
        assert_eq!(cfg.blur_sig, [0.0, 3.0], "{name}");
        assert_eq!(cfg.jpg_qual, [30, 100], "{name}");
        assert_eq!(cfg.jpg_method, all_encoders, "{name}");
        assert_eq!(cfg.rz_interp, vec![Interp::Bilinear], "{name}");
        assert_eq!((cfg.load_size, cfg.crop_size), (256, 224), "{name}");
        assert!(!cfg.no_flip && !cfg.no_resize, "{name}");
        assert_eq!(cfg.val_sigma(), 1.5);
        assert_eq!(cfg.val_quality(), 65);
        cfg.validate().expect(name);
    }
    assert_eq!(
        AugmentConfig::default(),
        AugmentConfig::preset("no-aug").unwrap()
    );
    assert!(matches!(
        AugmentConfig::preset("blur+jpeg"),
        Err(AugmentError::Config(_))
    ));
}

#[test]
fn config_round_trips_through_toml_and_accepts_reference_names() {
    let cfg = AugmentConfig::preset("blur+jpeg-0.1").unwrap();
    let text = toml::to_string(&cfg).expect("serialise");
    let back: AugmentConfig = toml::from_str(&text).expect("parse");
    assert_eq!(back, cfg);

    let partial: AugmentConfig = toml::from_str(
        "blur_prob = 1.0\njpg_prob = 0.25\njpg_method = [\"pil\", \"cv2\"]\n\
         rz_interp = [\"bicubic\", \"lanczos\", \"nearest\"]\njpg_qual = [75, 75]\n",
    )
    .expect("parse");
    assert_eq!(
        partial.jpg_method,
        [JpegEncoder::LibjpegTurbo, JpegEncoder::PureRust]
    );
    assert_eq!(partial.jpg_qual, [75, 75]);
    assert_eq!(partial.load_size, 256);
    assert!(toml::from_str::<AugmentConfig>("blur_probability = 1.0").is_err());

    for bad in [
        "blur_prob = 1.5",
        "blur_sig = [2.0, 1.0]",
        "jpg_qual = [0, 100]",
        "jpg_qual = [90, 80]",
        "jpg_method = []",
        "crop_size = 0",
    ] {
        let cfg: AugmentConfig = toml::from_str(bad).expect(bad);
        assert!(cfg.validate().is_err(), "{bad} accepted");
        let img = test_image(8, 8);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(augment_train(&img, &cfg, &mut rng).is_err(), "{bad}");
    }
}

/// A small configuration so that thousands of draws run fast.
fn small(preset: &str) -> AugmentConfig {
    AugmentConfig {
        load_size: 24,
        crop_size: 20,
        ..AugmentConfig::preset(preset).unwrap()
    }
}

#[test]
fn blur_and_jpeg_are_drawn_independently() {
    let img = test_image(40, 30);
    for (preset, p) in [("blur+jpeg-0.5", 0.5), ("blur+jpeg-0.1", 0.1)] {
        let cfg = small(preset);
        let n = 4000;
        let mut counts = [[0usize; 2]; 2];
        let (mut flips, mut rust, mut sigma_sum) = (0, 0, 0.0);
        let (mut qmin, mut qmax) = (u8::MAX, 0);
        for i in 0..n {
            let mut rng = sample_rng(7, 0, i);
            let out = augment_train(&img, &cfg, &mut rng).expect("augment");
            assert_eq!(out.image.dimensions(), (20, 20));
            let r = out.record;
            let (b, j) = (r.blur_sigma.is_some(), r.jpeg_quality.is_some());
            counts[usize::from(b)][usize::from(j)] += 1;
            flips += usize::from(r.flip);
            if let Some(s) = r.blur_sigma {
                assert!((0.0..3.0).contains(&s));
                sigma_sum += s;
            }
            if let (Some(q), Some(e)) = (r.jpeg_quality, r.jpeg_encoder) {
                qmin = qmin.min(q);
                qmax = qmax.max(q);
                rust += usize::from(e == JpegEncoder::PureRust);
            }
        }
        let nf = n as f64;
        for (b, pb) in [(0, 1.0 - p), (1, p)] {
            for (j, pj) in [(0, 1.0 - p), (1, p)] {
                let expected = pb * pj;
                let got = counts[b][j] as f64 / nf;
                // Five binomial standard deviations.
                let tol = 5.0 * (expected * (1.0 - expected) / nf).sqrt();
                eprintln!(
                    "{preset}: blur={b} jpeg={j}: {got:.4} (expected {expected:.4} +- {tol:.4})"
                );
                assert!((got - expected).abs() <= tol, "{preset} blur={b} jpeg={j}");
            }
        }
        let n_blur = (counts[1][0] + counts[1][1]) as f64;
        let n_jpeg = (counts[0][1] + counts[1][1]) as f64;
        let flip_rate = flips as f64 / nf;
        assert!(
            (flip_rate - 0.5).abs() < 5.0 * (0.25 / nf).sqrt(),
            "flips {flip_rate}"
        );
        let mean_sigma = sigma_sum / n_blur;
        // U[0, 3): sd 0.866.
        assert!(
            (mean_sigma - 1.5).abs() < 5.0 * 0.866 / n_blur.sqrt(),
            "{mean_sigma}"
        );
        let rust_rate = rust as f64 / n_jpeg;
        assert!(
            (rust_rate - 0.5).abs() < 5.0 * (0.25 / n_jpeg).sqrt(),
            "{rust_rate}"
        );
        if p == 0.5 {
            assert_eq!((qmin, qmax), (30, 100));
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_sample() {
    let img = test_image(70, 50);
    let cfg = AugmentConfig {
        load_size: 48,
        crop_size: 40,
        rz_interp: Interp::ALL.to_vec(),
        ..AugmentConfig::preset("blur+jpeg-0.5").unwrap()
    };
    let mut distinct = std::collections::HashSet::new();
    for i in 0..40 {
        let a = augment_train(&img, &cfg, &mut sample_rng(3, 1, i)).unwrap();
        let b = augment_train(&img, &cfg, &mut sample_rng(3, 1, i)).unwrap();
        assert_eq!(a.image, b.image);
        assert_eq!(a.record, b.record);
        distinct.insert(a.image.into_raw());
    }
    assert!(
        distinct.len() > 30,
        "only {} distinct samples",
        distinct.len()
    );
    // One generator threaded through several samples is repeatable too.
    let run = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..10)
            .map(|_| augment_train(&img, &cfg, &mut rng).unwrap().record)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn train_pipeline_applies_the_steps_in_order() {
    // Force every step and replay the record by hand.
    let img = test_image(90, 60);
    let cfg = AugmentConfig {
        load_size: 64,
        crop_size: 48,
        blur_prob: 1.0,
        jpg_prob: 1.0,
        ..AugmentConfig::default()
    };
    for i in 0..8 {
        let out = augment_train(&img, &cfg, &mut sample_rng(5, 0, i)).unwrap();
        let r = &out.record;
        let interp = r.interp.expect("resized");
        let mut cur = resize_shorter(&img, 64, interp);
        assert_eq!(r.resized, [96, 64]);
        cur = gaussian_blur(&cur, r.blur_sigma.expect("blurred"));
        let (q, e) = (r.jpeg_quality.unwrap(), r.jpeg_encoder.unwrap());
        cur = jpeg_roundtrip(&cur, q, e).unwrap();
        let [left, top] = r.crop;
        assert!((0..=48).contains(&left) && (0..=16).contains(&top));
        let mut expected =
            image::imageops::crop_imm(&cur, left as u32, top as u32, 48, 48).to_image();
        if r.flip {
            expected = image::imageops::flip_horizontal(&expected);
        }
        assert_eq!(out.image, expected, "sample {i}: {r:?}");
    }
}

#[test]
fn validation_uses_fixed_midpoints_and_the_pil_encoder() {
    let img = test_image(80, 64);
    let cfg = AugmentConfig {
        load_size: 40,
        crop_size: 32,
        ..AugmentConfig::preset("blur+jpeg-0.5").unwrap()
    };
    let (mut blurred, mut compressed) = (0, 0);
    let n = 400;
    for i in 0..n {
        let a = augment_val(&img, &cfg, &mut sample_rng(9, VALIDATION_EPOCH, i)).unwrap();
        let b = augment_val(&img, &cfg, &mut sample_rng(9, VALIDATION_EPOCH, i)).unwrap();
        assert_eq!(a.image, b.image);
        assert_eq!(a.record, b.record);
        let r = a.record;
        assert!(!r.flip);
        assert_eq!(r.interp, Some(Interp::Bilinear));
        assert_eq!(r.resized, [50, 40]);
        // torchvision CenterCrop: round(18 / 2) = 9, round(8 / 2) = 4.
        assert_eq!(r.crop, [9, 4]);
        if let Some(s) = r.blur_sigma {
            assert_eq!(s, 1.5);
            blurred += 1;
        }
        if let Some(q) = r.jpeg_quality {
            assert_eq!(q, 65);
            assert_eq!(r.jpeg_encoder, Some(JpegEncoder::LibjpegTurbo));
            compressed += 1;
        }
    }
    // Same probabilities as training (0.5 each).
    for k in [blurred, compressed] {
        let rate = k as f64 / n as f64;
        assert!(
            (rate - 0.5).abs() < 5.0 * (0.25 / n as f64).sqrt(),
            "{rate}"
        );
    }

    // With both forced, the output is exactly resize -> blur(1.5) ->
    // JPEG(65, libjpeg-turbo) -> center crop, whatever the generator.
    let forced = AugmentConfig {
        blur_prob: 1.0,
        jpg_prob: 1.0,
        ..cfg.clone()
    };
    let mut expected = resize_shorter(&img, 40, Interp::Bilinear);
    expected = gaussian_blur(&expected, 1.5);
    expected = jpeg_roundtrip(&expected, 65, JpegEncoder::LibjpegTurbo).unwrap();
    expected = center_crop(&expected, 32);
    for seed in 0..5 {
        let out = augment_val(&img, &forced, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        assert_eq!(out.image, expected);
    }
}

#[test]
fn small_images_are_padded_not_refused() {
    // crop_size above load_size: torchvision's RandomCrop would raise; the
    // window is centred on the short side and padded with black instead.
    let img = test_image(30, 20);
    let cfg = AugmentConfig {
        load_size: 20,
        crop_size: 24,
        no_flip: true,
        ..AugmentConfig::default()
    };
    let out = augment_train(&img, &cfg, &mut sample_rng(1, 0, 0)).unwrap();
    assert_eq!(out.image.dimensions(), (24, 24));
    let [left, top] = out.record.crop;
    assert!((0..=6).contains(&left));
    assert_eq!(top, -2);
    assert_eq!(out.image.get_pixel(0, 0).0, [0, 0, 0]);
}

#[test]
fn shared_fixture_images_through_every_preset() {
    let shared = cnnspot_testdata::require_shared!();
    for name in ["real.png", "fake.png"] {
        let path = shared.join("fixtures").join(name);
        let img = load_rgb(&path, 1 << 26).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for preset in PRESETS {
            let cfg = AugmentConfig::preset(preset).unwrap();
            for i in 0..3 {
                let out = augment_train(&img, &cfg, &mut sample_rng(0, 0, i)).unwrap();
                assert_eq!(out.image.dimensions(), (224, 224), "{name} {preset}");
                let short = out.record.resized[0].min(out.record.resized[1]);
                assert_eq!(short, 256, "{name} {preset}");
            }
            let val = augment_val(&img, &cfg, &mut sample_rng(0, VALIDATION_EPOCH, 0)).unwrap();
            assert_eq!(val.image.dimensions(), (224, 224));
        }
    }
}
