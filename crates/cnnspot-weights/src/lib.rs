//! cnnspot-weights (work in progress)
