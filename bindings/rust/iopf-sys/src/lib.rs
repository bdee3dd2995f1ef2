//! Raw bindings to libiopf, generated at build time by bindgen from the
//! installed `<iopf/iopf.h>`: every `iopf_*` function and type and every
//! `IOPF_*` constant, exactly as in C. See the `iopf` crate for the safe
//! API and `iopf.h` for each function's contract.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
