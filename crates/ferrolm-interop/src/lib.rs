//! # ferrolm-interop
//!
//! Interoperability tests of ferrolm against the two other Olm implementations Matrix clients
//! run: [libolm](https://gitlab.matrix.org/matrix-org/olm) 3.2 (C/C++, through a small safe
//! wrapper over its C API, [`libolm`]) and [vodozemac](https://docs.rs/vodozemac) 0.10 (Rust).
//!
//! The library part is only the libolm wrapper; the tests live in `tests/` and run with
//! `cargo test -p ferrolm-interop`. They need the system libolm: on Debian and Ubuntu,
//! `apt-get install libolm-dev` (headers and `libolm.so`).
//!
//! The crate is not published and does not inherit the workspace lints: the wrapper needs
//! `unsafe` for its FFI calls, each of which carries a `SAFETY` comment.
#![allow(unsafe_code)]
#![warn(missing_docs)]

pub mod libolm;
