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
//! Smaller blocks stay in the heap, and glibc gives the heap's free top back to the system
//! whenever it passes 128 KiB (`M_TRIM_THRESHOLD`): a streamed step frees its small decoded
//! tensors, the heap shrinks, and the next step faults the same pages in again, zeroed. So
//! [`return_freed_memory`] also keeps up to [`TRIM_THRESHOLD`] of free heap top: on the demo
//! model `generate --stream --threads 1` went from 648–681 to 788–798 tokens/s (page faults
//! and the kernel's zeroing had been a sixth of its time in `perf`), while the peak of
//! anonymous memory (RssAnon, sampled throughout) stayed 2.68 MB there and rose by 0.03 MB
//! (`generate`) and 0.12–0.16 MB (`eval`, 13.2–13.4 MB) on the baseline shape (2026-12-07, Zen
//! 4; speed from builds without and with the setting, memory from `MALLOC_TRIM_THRESHOLD_`
//! against the default).
//!
//! This is process policy, so it lives in the binary: the runtime library has no unsafe code
//! and leaves its host's allocator alone.

/// The mmap threshold [`return_freed_memory`] sets, in bytes. 64 KiB saves another 0.8 MB on
/// the baseline shape but makes streaming 2.5× slower: the GEMM's per-call packing buffers
/// are then mapped and unmapped on every product.
pub const MMAP_THRESHOLD: usize = 128 << 10;

/// The free heap top [`return_freed_memory`] lets glibc keep instead of giving it back, in
/// bytes (its default is 128 KiB). A bound on what the setting can add to the peak.
pub const TRIM_THRESHOLD: usize = 1 << 20;

/// Asks the C allocator to map every block of at least [`MMAP_THRESHOLD`] bytes on its own
/// and unmap it when freed (glibc `mallopt(M_MMAP_THRESHOLD)`, which also stops the dynamic
/// adjustment), and to keep up to [`TRIM_THRESHOLD`] of free heap top (`M_TRIM_THRESHOLD`).
/// Trades some speed (a map and page faults per large block) for peak memory. Returns
/// whether the allocator accepted both; elsewhere than glibc it does nothing and returns
/// false.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn return_freed_memory() -> bool {
    SETTINGS.iter().all(|&(param, value)| {
        // SAFETY: `mallopt` only changes malloc's tuning parameters; it takes plain integers
        // and is safe to call at any time, from any thread.
        unsafe { libc::mallopt(param, value as libc::c_int) == 1 }
    })
}

/// What [`return_freed_memory`] sets: `mallopt` parameters and values.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SETTINGS: [(libc::c_int, usize); 2] = [
    (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
];

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

    /// Anonymous resident memory of this process, in KiB (Linux).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("RssAnon:"))
            .expect("RssAnon");
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("a number")
    }

    /// Small blocks (heap, not mapped) freed together stay resident up to the trim threshold:
    /// with glibc's default (128 KiB) the 768 KiB below would mostly go back to the system at
    /// the last free, to be faulted in again by the next step of a stream.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_freed_heap_top_stays_resident() {
        assert!(super::return_freed_memory());
        let blocks: Vec<Vec<u8>> = (0..48u8).map(|i| vec![i | 1; 16 << 10]).collect();
        let held = rss_anon_kib();
        drop(blocks);
        let after = rss_anon_kib();
        assert!(
            held.saturating_sub(after) < 256,
            "{held} KiB held, {after} KiB after freeing 768 KiB of small blocks"
        );
    }
}
