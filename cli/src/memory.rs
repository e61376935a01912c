//! Allocator tuning for the low-memory (`--stream`) mode.
//!
//! glibc's malloc raises its mmap threshold each time a large mapped block is freed, up to
//! 32 MiB; after the first decoded weight (megabytes) is dropped, later blocks of that size
//! come from the heap arenas, and freed ones stay resident there. A streamed evaluation,
//! which decodes and drops every weight once per window, then holds several megabytes more
//! than it uses. [`return_freed_memory`] fixes the threshold at [`MMAP_THRESHOLD`], so every
//! larger block is its own mapping and goes back to the system when freed. (glibc reads the
//! same setting from the environment variable `MALLOC_MMAP_THRESHOLD_` at start-up, which is
//! how the `runtime-compare` benchmark gives it to its streaming children.)
//!
//! This is process policy, so it lives in the binary: the runtime library has no unsafe code
//! and leaves its host's allocator alone.

/// The mmap threshold [`return_freed_memory`] sets, in bytes. 64 KiB saves another 0.8 MB on
/// the baseline shape but makes streaming 2.5× slower: the GEMM's per-call packing buffers
/// are then mapped and unmapped on every product.
pub const MMAP_THRESHOLD: usize = 128 << 10;

/// Asks the C allocator to map every block of at least [`MMAP_THRESHOLD`] bytes on its own
/// and unmap it when freed (glibc `mallopt(M_MMAP_THRESHOLD)`, which also stops the dynamic
/// adjustment). Trades some speed (a map and page faults per large block) for peak memory.
/// Returns whether the allocator accepted it; elsewhere than glibc it does nothing and
/// returns false.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn return_freed_memory() -> bool {
    // SAFETY: `mallopt` only changes malloc's tuning parameters; it takes plain integers and
    // is safe to call at any time, from any thread.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 }
}

/// Asks the C allocator to return large freed blocks (only glibc is tuned; false here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_freed_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_threshold() {
        assert_eq!(
            super::return_freed_memory(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
    }
}
