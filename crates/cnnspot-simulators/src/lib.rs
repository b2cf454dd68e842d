//! Generator simulators cnnspot trains itself (work in progress).
#![warn(missing_docs)]
