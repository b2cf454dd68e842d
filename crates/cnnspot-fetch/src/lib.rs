//! cnnspot-fetch (work in progress)
