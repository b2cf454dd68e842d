//! cnnspot-image (work in progress)
