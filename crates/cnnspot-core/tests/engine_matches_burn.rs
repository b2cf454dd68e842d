//! The fast engine (`cnnspot-engine`) gives the burn model's logits on the
//! same state dict, for every kind of layer and at odd sizes.

use burn::tensor::{Device, Tensor, TensorData};
use cnnspot_core::model::ResNet;
use cnnspot_engine::{FastResNet, Isa};
use cnnspot_net::{
    log_spectrum, random_input, random_state_dict as random_state, Arch, InputTransform,
    SPECTRUM_MARKER,
};

fn assert_close(fast: &[f32], burn: &[f32], what: &str) {
    cnnspot_testdata::assert_close(fast, burn, 1e-4, &format!("{what} (fast vs burn)"));
}

fn burn_logits(net: &ResNet, data: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    let device = Device::flex();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(data.to_vec(), [n, 3, h, w]), &device);
    net.forward(x).into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn agrees_with_burn_on_resnet18_at_odd_sizes() {
    let state = random_state(Arch::ResNet18, 3, 7);
    let (net, _) = ResNet::from_state_dict(&state, &Device::flex()).unwrap();
    let fast = FastResNet::from_state_dict(&state).unwrap();
    assert_eq!(fast.arch(), Arch::ResNet18);
    for (i, (n, h, w)) in [(1, 224, 224), (3, 33, 47), (1, 65, 65), (2, 32, 32)]
        .into_iter()
        .enumerate()
    {
        let x = random_input(n * 3 * h * w, i as u32 + 1);
        let want = burn_logits(&net, &x, n, h, w);
        let got = fast.forward_nchw(&x, n, h, w);
        assert_close(&got, &want, &format!("{n}x3x{h}x{w}"));
        // Every kernel this CPU has (AVX-512, AVX2 + FMA, portable).
        for isa in Isa::ALL.into_iter().filter(|isa| isa.supported()) {
            let forced = FastResNet::from_state_dict(&state).unwrap().with_isa(isa);
            assert_eq!(forced.isa(), isa);
            assert_close(
                &forced.forward_nchw(&x, n, h, w),
                &want,
                &format!("{isa:?} {n}x3x{h}x{w}"),
            );
        }
    }
}

#[test]
fn agrees_with_burn_on_resnet50_with_and_without_winograd() {
    let state = random_state(Arch::ResNet50, 1, 11);
    let (net, _) = ResNet::from_state_dict(&state, &Device::flex()).unwrap();
    let fast = FastResNet::from_state_dict(&state).unwrap();
    let direct = FastResNet::from_state_dict(&state)
        .unwrap()
        .without_winograd();
    // Two 160x160 images give layer4 (5x5) 18 2x2 tiles, enough for
    // every 3x3 stride-1 convolution to take the Winograd route.
    let (n, h, w) = (2, 160, 160);
    let x = random_input(n * 3 * h * w, 5);
    let want = burn_logits(&net, &x, n, h, w);
    assert_close(&fast.forward_nchw(&x, n, h, w), &want, "resnet50 winograd");
    assert_close(&direct.forward_nchw(&x, n, h, w), &want, "resnet50 direct");
}

#[test]
fn agrees_with_burn_on_npr_at_odd_sizes() {
    let state = random_state(Arch::Npr, 1, 13);
    let (net, _) = ResNet::from_state_dict(&state, &Device::flex()).unwrap();
    let fast = FastResNet::from_state_dict(&state).unwrap();
    for (i, (n, h, w)) in [(2, 64, 64), (1, 37, 50)].into_iter().enumerate() {
        let x = random_input(n * 3 * h * w, i as u32 + 31);
        let want = burn_logits(&net, &x, n, h, w);
        assert_close(
            &fast.forward_nchw(&x, n, h, w),
            &want,
            &format!("npr {n}x3x{h}x{w}"),
        );
    }
}

#[test]
fn a_spectrum_marker_makes_both_engines_read_the_log_spectrum() {
    let rgb_state = random_state(Arch::ResNet18, 1, 17);
    let mut state = rgb_state.clone();
    state.extend(InputTransform::Spectrum.marker(Arch::ResNet18));
    let (net, arch) = ResNet::from_state_dict(&state, &Device::flex()).unwrap();
    assert_eq!(arch, Arch::ResNet18);
    let fast = FastResNet::from_state_dict(&state).unwrap();
    let (rgb_net, _) = ResNet::from_state_dict(&rgb_state, &Device::flex()).unwrap();
    let (n, h, w) = (2, 40, 36);
    let x = random_input(n * 3 * h * w, 41);
    // The same network without the marker, fed the spectrum by hand.
    let mut spectrum = x.clone();
    log_spectrum(&mut spectrum, h, w);
    let want = burn_logits(&rgb_net, &spectrum, n, h, w);
    assert_close(&burn_logits(&net, &x, n, h, w), &want, "burn spectrum");
    assert_close(&fast.forward_nchw(&x, n, h, w), &want, "fast spectrum");
    // And it differs from reading the image itself.
    let plain = burn_logits(&rgb_net, &x, n, h, w);
    assert!(plain.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3));
    // The marker survives a round trip through the burn model.
    assert!(net.to_state_dict().contains_key(SPECTRUM_MARKER));
    assert!(!rgb_net.to_state_dict().contains_key(SPECTRUM_MARKER));
}

/// Both engines score the same files alike through the folder pipeline
/// (`Detector::score_paths`: decoding, batching), and a pixel budget refuses
/// a whole image but not its crop. A random ResNet-18 written as safetensors
/// and images made here.
#[test]
fn engines_agree_on_the_folder_pipeline_and_refuse_images_over_the_budget() {
    use cnnspot_core::{Batching, Detector, Engine, PreprocessOptions};
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("resnet18.safetensors");
    let tensors: Vec<(String, cnnspot_weights::TensorView)> = random_state(Arch::ResNet18, 1, 3)
        .into_iter()
        .map(|(name, (shape, values))| {
            (
                name,
                cnnspot_weights::TensorView::from_f32(shape, &values).unwrap(),
            )
        })
        .collect();
    cnnspot_weights::save_safetensors(&tensors, &weights).unwrap();
    let paths: Vec<_> = (0..3u32)
        .map(|i| {
            let p = dir.path().join(format!("{i}.png"));
            image::RgbImage::from_fn(256, 256, |x, y| {
                image::Rgb([(x * (i + 1)) as u8, (y + 40 * i) as u8, ((x ^ y) * 3) as u8])
            })
            .save(&p)
            .unwrap();
            p
        })
        .collect();
    let opts = PreprocessOptions::default();
    let batching = Batching::default();
    let mut per_engine = Vec::new();
    for engine in [Engine::Fast, Engine::Burn] {
        let det = Detector::load_with(&weights, engine).unwrap();
        assert_eq!(det.engine(), engine);
        let mut logits = Vec::new();
        det.score_paths(&paths, &opts, &batching, |i, _, r| {
            logits.push((i, r.unwrap().logit))
        });
        per_engine.push(logits);
    }
    assert_eq!(per_engine[0].len(), 3);
    for (a, b) in per_engine[0].iter().zip(&per_engine[1]) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - b.1).abs() < 1e-4, "fast {} vs burn {}", a.1, b.1);
    }
    // The three images differ, so equal logits would mean nothing was read.
    assert!((per_engine[0][0].1 - per_engine[0][1].1).abs() > 1e-6);

    let mut small = Detector::load(&weights).unwrap();
    small.set_max_infer_pixels(224 * 224);
    let mut results = Vec::new();
    small.score_paths(&paths[..1], &opts, &batching, |_, _, r| results.push(r));
    let err = results.pop().unwrap().unwrap_err().to_string();
    assert!(err.contains("256x256") && err.contains("budget"), "{err}");
    let cropped = PreprocessOptions {
        crop: Some(224),
        ..PreprocessOptions::default()
    };
    assert!(small.score_path(&paths[0], &cropped).is_ok());
}
