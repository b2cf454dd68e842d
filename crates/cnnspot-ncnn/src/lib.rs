//! A small interpreter for ncnn `.param` / `.bin` graphs (work in progress).
#![warn(missing_docs)]
