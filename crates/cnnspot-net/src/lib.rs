//! The networks cnnspot runs, described once.
//!
//! A [`NetSpec`] lists, for an architecture ([`Arch`]) and head size, every
//! layer with its parameter names, shape, stride and padding. The burn model
//! (`cnnspot-core`), the fast engine (`cnnspot-engine`), the weight-name
//! mapping and the checks of a [`StateDict`] are all derived from it; this
//! crate has no tensor library, so every engine can depend on it.
//!
//! ```
//! use cnnspot_net::{describe_state_dict, random_state_dict, Arch};
//! let state = random_state_dict(Arch::Npr, 1, 0);
//! assert_eq!(describe_state_dict(&state).unwrap(), (Arch::Npr, 1));
//! assert_eq!(state["fc1.weight"].0, vec![1, 512]);
//! ```

#![warn(missing_docs)]

mod error;
mod input;
mod spec;
mod state;

pub use error::ModelError;
pub use input::{
    apply as apply_input, is_input_marker, log_spectrum, npr_residual, InputTransform,
    SPECTRUM_EPS, SPECTRUM_MARKER,
};
pub use spec::{is_head_weight, Arch, BlockSpec, ConvSpec, HeadSpec, NetSpec};
pub use state::{
    check_detector_values, check_state_dict, check_values, describe_state_dict,
    expected_parameters, random_input, random_state_dict, spec_of_state, StateDict, StateTensor,
};
