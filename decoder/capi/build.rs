//! The `small` shared library leaves out what a `no_std` library without constructors never
//! uses: unwind tables, the C runtime's start files and the toolchains' `.comment` notes.
//!
//! - The `small` build has no std, so it is built `panic = "abort"` (a `no_std` library cannot
//!   unwind on stable Rust) and nothing in it unwinds: the tables (`.eh_frame`,
//!   `.eh_frame_hdr`) would only serve debuggers and profilers walking the stack of a stripped
//!   library, and they were 8–15 % of its bytes (3,752 B of 46,000 at opt-level "s"; 6,544 B at
//!   "z", whose smaller functions each need a record). LTO keeps them even with
//!   `-C force-unwind-tables=no`, since core's bitcode asks for them, so the linker drops
//!   them: a linker script that only adds a `/DISCARD/` rule (`INSERT`, so the default layout
//!   stays) and `--no-eh-frame-hdr`.
//! - `-nostartfiles`: `crti`/`crtbegin`/`crtend`/`crtn` run C and C++ constructors and
//!   destructors and register transactional-memory clone tables; the library has none, and
//!   they brought `_init`/`_fini`, four weak imports (`__cxa_finalize`, `__gmon_start__`,
//!   `_ITM_*`) with their relocations, and about 300 bytes of code (1.9 KB of the file in all,
//!   with `.comment`).
//!
//! GNU ld and lld (Rust's default linker on x86-64 Linux) both read these; other targets keep
//! the defaults. The C conformance program and the Python package load this library in the
//! cross-language suite.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let small = env::var_os("CARGO_FEATURE_SMALL").is_some();
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if !(small && linux) {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("no-unwind-tables.ld");
    fs::write(
        &script,
        "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) *(.comment) } } INSERT AFTER .text;\n",
    )
    .expect("writes the linker script into OUT_DIR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-eh-frame-hdr");
    println!("cargo:rustc-cdylib-link-arg=-nostartfiles");
}
