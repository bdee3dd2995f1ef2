//! Generates the raw bindings from the libiopf header that pkg-config
//! finds (the installed one, not the source tree's), and links libiopf.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    // 1.3 is the oldest release whose header has everything bound here.
    let lib = pkg_config::Config::new()
        .atleast_version("1.3")
        .probe("libiopf")
        .unwrap_or_else(|e| {
            panic!("libiopf not found by pkg-config (set PKG_CONFIG_PATH to its lib/pkgconfig): {e}")
        });

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("iopf_.*")
        .allowlist_type("iopf_.*")
        .allowlist_var("IOPF_.*")
        .size_t_is_usize(true)
        .derive_default(true)
        .layout_tests(true);
    for dir in &lib.include_paths {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
        // Rebuild when the installed header changes (bindgen 0.60's
        // CargoCallbacks would also name every system header).
        let h = dir.join("iopf").join("iopf.h");
        if h.exists() {
            println!("cargo:rerun-if-changed={}", h.display());
        }
    }
    let bindings = builder
        .generate()
        .expect("bindgen could not read iopf.h (is libclang installed? apt-get install libclang-dev)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(&out).expect("cannot write bindings.rs");
}
