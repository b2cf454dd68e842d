//! One description of every network the detector runs.
//!
//! A [`NetSpec`] lists, for an architecture and head size, every layer with
//! its parameter names (torchvision's, or NPR's), shape, stride and padding,
//! in the order torchvision's state dict lists them. The burn model, both
//! directions of the weight-name mapping, the expected-parameter check and
//! the fast engine are all built from it, so that adding a variant is a few
//! lines here.

use std::fmt;

use crate::input::InputTransform;

/// The architectures the detector runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// torchvision ResNet-18.
    ResNet18,
    /// torchvision ResNet-34.
    ResNet34,
    /// torchvision ResNet-50 (the paper's detector).
    ResNet50,
    /// torchvision ResNet-101.
    ResNet101,
    /// torchvision ResNet-152.
    ResNet152,
    /// NPR (Tan et al., CVPR 2024): the neighbouring-pixel residual into a
    /// 3x3 stride-2 stem, ResNet-50's first two stages and a 512-to-1 head
    /// named `fc1` (the key layout of NPR's `networks/resnet.py`).
    Npr,
}

/// A convolution followed by its BatchNorm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Name of the convolution (`layer1.0.conv1`); its weight is `<name>.weight`.
    pub conv: String,
    /// Name of the BatchNorm after it (`layer1.0.bn1`).
    pub bn: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl ConvSpec {
    /// Shape of the convolution weight, `[cout, cin, k, k]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![self.cout, self.cin, self.kernel, self.kernel]
    }
}

/// A residual block: two (basic) or three (bottleneck) convolutions, each
/// followed by BatchNorm, and an optional projection shortcut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSpec {
    /// The main path, in order; ReLU after each but the last, which gets
    /// the shortcut added first.
    pub convs: Vec<ConvSpec>,
    /// The 1x1 projection of the shortcut (`downsample.0` / `downsample.1`).
    pub downsample: Option<ConvSpec>,
}

/// The fully connected head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadSpec {
    /// Its name (`fc`, or `fc1` for NPR); parameters `<name>.weight` `[out, in]` and `<name>.bias`.
    pub name: &'static str,
    /// Features entering it.
    pub inputs: usize,
    /// Logits it produces.
    pub outputs: usize,
}

impl HeadSpec {
    /// `<name>.weight`.
    pub fn weight(&self) -> String {
        format!("{}.weight", self.name)
    }
    /// `<name>.bias`.
    pub fn bias(&self) -> String {
        format!("{}.bias", self.name)
    }
}

/// Every layer of a network, with names, shapes, strides and padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSpec {
    /// The architecture described.
    pub arch: Arch,
    /// What happens to the image before the stem.
    pub input: InputTransform,
    /// The stem convolution (`conv1`/`bn1`), then ReLU and a 3x3 stride-2 max pool.
    pub stem: ConvSpec,
    /// Residual blocks per stage (`layer1`, `layer2`, ...).
    pub stages: Vec<Vec<BlockSpec>>,
    /// The head after global average pooling.
    pub head: HeadSpec,
}

const BN_PARTS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

impl Arch {
    /// Every architecture, the ResNets shallowest first.
    pub const ALL: [Arch; 6] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::ResNet101,
        Arch::ResNet152,
        Arch::Npr,
    ];

    /// Blocks in each stage.
    pub fn stage_blocks(self) -> &'static [usize] {
        match self {
            Arch::ResNet18 => &[2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => &[3, 4, 6, 3],
            Arch::ResNet101 => &[3, 4, 23, 3],
            Arch::ResNet152 => &[3, 8, 36, 3],
            Arch::Npr => &[3, 4],
        }
    }

    /// Whether the blocks are bottlenecks (1x1, 3x3, 1x1 with expansion 4).
    pub fn bottleneck(self) -> bool {
        !matches!(self, Arch::ResNet18 | Arch::ResNet34)
    }

    /// Channels entering the classifier.
    pub fn feature_dim(self) -> usize {
        let expansion = if self.bottleneck() { 4 } else { 1 };
        (64 << (self.stage_blocks().len() - 1)) * expansion
    }

    /// Name of the head's parameters.
    pub fn head_name(self) -> &'static str {
        match self {
            Arch::Npr => "fc1",
            _ => "fc",
        }
    }

    /// The lower-case name used on the command line (`resnet50`, `npr`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
            Arch::Npr => "npr",
        }
    }

    /// Parses `resnet50`, `ResNet-50`, `50`, `npr`, ...
    pub fn parse(s: &str) -> Option<Arch> {
        if s.trim().eq_ignore_ascii_case("npr") {
            return Some(Arch::Npr);
        }
        let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
        Arch::ALL
            .into_iter()
            .filter(|a| *a != Arch::Npr)
            .find(|a| a.name().trim_start_matches("resnet") == digits)
    }

    /// Infers the architecture from the parameter names of a state dict:
    /// bottleneck blocks have a `conv3`, the block counts per stage tell the
    /// depth apart, and NPR's head is `fc1`.
    pub fn infer<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Arch> {
        // Block indices beyond any real network are not a network of ours
        // (and must not overflow the count below).
        const MAX_BLOCKS: usize = 64;
        let mut blocks = [0usize; 4];
        let mut bottleneck = false;
        let mut head = None;
        for name in names {
            if name == "fc.weight" {
                head = Some("fc");
            } else if name == "fc1.weight" {
                head = Some("fc1");
            }
            let Some(rest) = name.strip_prefix("layer") else {
                continue;
            };
            let mut parts = rest.split('.');
            let (Some(stage), Some(block)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(stage), Ok(block)) = (stage.parse::<usize>(), block.parse::<usize>()) else {
                continue;
            };
            if !(1..=4).contains(&stage) || block >= MAX_BLOCKS {
                return None;
            }
            blocks[stage - 1] = blocks[stage - 1].max(block + 1);
            if parts.next() == Some("conv3") {
                bottleneck = true;
            }
        }
        Arch::ALL.into_iter().find(|a| {
            let want = a.stage_blocks();
            let counts_match = (0..4).all(|i| want.get(i).copied().unwrap_or(0) == blocks[i]);
            counts_match && a.bottleneck() == bottleneck && head == Some(a.head_name())
        })
    }

    /// The full description of this architecture with `num_outputs` logits.
    pub fn spec(self, num_outputs: usize) -> NetSpec {
        NetSpec::new(self, num_outputs)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn conv_spec(
    name: String,
    bn: String,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
) -> ConvSpec {
    ConvSpec {
        conv: name,
        bn,
        cin,
        cout,
        kernel,
        stride,
        pad: kernel / 2,
    }
}

impl NetSpec {
    /// The same network reading its image through `input` instead of
    /// its architecture's own transform (a spectrum classifier on NPR's
    /// or a ResNet's backbone).
    pub fn with_input(mut self, input: InputTransform) -> NetSpec {
        self.input = input;
        self
    }

    /// The description of `arch` with `num_outputs` logits.
    pub fn new(arch: Arch, num_outputs: usize) -> NetSpec {
        let stem_kernel = if arch == Arch::Npr { 3 } else { 7 };
        let input = InputTransform::default_for(arch);
        let stem = conv_spec("conv1".into(), "bn1".into(), 3, 64, stem_kernel, 2);
        let expansion = if arch.bottleneck() { 4 } else { 1 };
        let mut in_ch = 64;
        let mut stages = Vec::new();
        for (stage, &count) in arch.stage_blocks().iter().enumerate() {
            let width = 64 << stage;
            let out_ch = width * expansion;
            let mut blocks = Vec::with_capacity(count);
            for b in 0..count {
                let p = format!("layer{}.{}", stage + 1, b);
                // ResNet v1.5: the first block of every stage but the first
                // halves the resolution, on its 3x3 convolution.
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let c = |i: usize, cin, cout, k, s| {
                    conv_spec(
                        format!("{p}.conv{i}"),
                        format!("{p}.bn{i}"),
                        cin,
                        cout,
                        k,
                        s,
                    )
                };
                let convs = if arch.bottleneck() {
                    vec![
                        c(1, in_ch, width, 1, 1),
                        c(2, width, width, 3, stride),
                        c(3, width, out_ch, 1, 1),
                    ]
                } else {
                    vec![c(1, in_ch, width, 3, stride), c(2, width, width, 3, 1)]
                };
                let downsample = (b == 0 && (stride != 1 || in_ch != out_ch)).then(|| {
                    conv_spec(
                        format!("{p}.downsample.0"),
                        format!("{p}.downsample.1"),
                        in_ch,
                        out_ch,
                        1,
                        stride,
                    )
                });
                blocks.push(BlockSpec { convs, downsample });
                in_ch = out_ch;
            }
            stages.push(blocks);
        }
        NetSpec {
            arch,
            input,
            stem,
            stages,
            head: HeadSpec {
                name: arch.head_name(),
                inputs: arch.feature_dim(),
                outputs: num_outputs,
            },
        }
    }

    /// Every convolution with its BatchNorm, in state-dict order.
    pub fn convs(&self) -> impl Iterator<Item = &ConvSpec> {
        std::iter::once(&self.stem).chain(
            self.stages
                .iter()
                .flatten()
                .flat_map(|b| b.convs.iter().chain(b.downsample.as_ref())),
        )
    }

    /// Every parameter name with its shape, in torchvision's order;
    /// `num_batches_tracked` buffers are left out.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for c in self.convs() {
            out.push((format!("{}.weight", c.conv), c.weight_shape()));
            for part in BN_PARTS {
                out.push((format!("{}.{part}", c.bn), vec![c.cout]));
            }
        }
        out.push((
            self.head.weight(),
            vec![self.head.outputs, self.head.inputs],
        ));
        out.push((self.head.bias(), vec![self.head.outputs]));
        out
    }

    /// (half kernel width, stride) of every layer on the longest path, the
    /// max pool included: what the receptive field and output stride follow.
    pub fn path(&self) -> Vec<(usize, usize)> {
        let conv = |c: &ConvSpec| ((c.kernel - 1) / 2, c.stride);
        let mut out = vec![conv(&self.stem), (1, 2)];
        for b in self.stages.iter().flatten() {
            out.extend(b.convs.iter().map(conv));
        }
        out
    }
}

/// Whether `name` is the weight of a head (`fc.weight`, `fc1.weight`):
/// PyTorch stores it `[out, in]`, burn `[in, out]`.
pub fn is_head_weight(name: &str) -> bool {
    name == "fc.weight" || name == "fc1.weight"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_is_inferred_from_its_own_names() {
        for arch in Arch::ALL {
            let names = arch.spec(1).parameters();
            assert_eq!(
                Arch::infer(names.iter().map(|(n, _)| n.as_str())),
                Some(arch)
            );
        }
        assert_eq!(Arch::ResNet50.spec(1).parameters().len(), 320 - 53);
        assert_eq!(Arch::infer(["conv1.weight", "fc.weight"]), None);
    }

    #[test]
    fn absurd_block_indices_are_not_an_arch() {
        let name = format!("layer1.{}.conv1.weight", usize::MAX);
        assert_eq!(Arch::infer([name.as_str(), "fc.weight"]), None);
    }

    #[test]
    fn npr_is_resnet50s_first_two_stages_with_a_small_stem() {
        let spec = Arch::Npr.spec(1);
        let params = spec.parameters();
        let r50: Vec<_> = Arch::ResNet50.spec(1).parameters();
        // Every layer1/layer2 tensor is ResNet-50's, same shape.
        for (name, shape) in params.iter().filter(|(n, _)| n.starts_with("layer")) {
            assert!(r50.contains(&(name.clone(), shape.clone())), "{name}");
        }
        assert!(params.contains(&("conv1.weight".into(), vec![64, 3, 3, 3])));
        assert!(params.contains(&("fc1.weight".into(), vec![1, 512])));
        assert!(!params.iter().any(|(n, _)| n.starts_with("layer3")));
        let learnable: usize = params
            .iter()
            .filter(|(n, _)| !n.contains("running"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        // conv1 1728 + bn1 128 + layer1 215,808 + layer2 1,219,584 + fc1 513.
        assert_eq!(learnable, 1_437_761);
    }

    #[test]
    fn names_parse() {
        assert_eq!(Arch::parse("resnet50"), Some(Arch::ResNet50));
        assert_eq!(Arch::parse("ResNet-101"), Some(Arch::ResNet101));
        assert_eq!(Arch::parse("NPR"), Some(Arch::Npr));
        assert_eq!(Arch::parse("vgg16"), None);
    }
}
