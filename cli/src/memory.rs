//! Allocator tuning for the low-memory (`--stream`) mode.
//!
//! glibc's malloc raises its mmap threshold each time a large mapped block is freed, up to
//! 32 MiB; after the first decoded weight (megabytes) is dropped, later blocks of that size
//! come from the heap arenas, and freed ones stay resident there. A streamed evaluation,
//! which decodes and drops every weight once per window, then holds several megabytes more
//! than it uses. [`return_freed_memory`] fixes the threshold at [`MMAP_THRESHOLD`], so every
//! larger block is its own mapping and goes back to the system when freed. (glibc reads the
//! same settings from the environment variables `MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_` and `MALLOC_ARENA_MAX` at start-up, which is how the
//! `runtime-compare` and `gen-compare` benchmarks give them to their streaming children.)
//!
//! Smaller blocks stay in the heap, where the next step's tensor of the same size reuses
//! them. A mapped block costs a map, a page fault and the kernel's zeroing for every page,
//! and an unmap: with the threshold at 128 KiB (until 2026-12-07) every decoded matrix of the
//! baseline shape (131,072–524,288 weights, a byte each) and its payload was mapped afresh
//! each step, and the kernel took 53 % of `generate --stream`'s time in `perf` (20 % with
//! these settings, most of it the payloads' reads from the page cache). glibc also gives the
//! heap's free top back whenever it passes 128 KiB (`M_TRIM_THRESHOLD`), so that a step that
//! freed its tensors faulted the same pages in again at the next; [`TRIM_THRESHOLD`] keeps up
//! to 4 MiB of it. And every thread that allocates gets an arena of its own (the rayon worker
//! the pass runs on, the prefetching thread), each keeping its own free memory: [`ARENA_MAX`]
//! keeps one. (With one arena and
//! 2 MiB of top, the two threads' blocks took turns at the top and two-thread generation on
//! the baseline shape faulted 16–21 k pages in 30 tokens and ran at 66–75 tokens/s.)
//!
//! Against 128 KiB, 1 MiB of top and one arena per thread (2026-12-07, Zen 4; tokens/s over
//! three alternations, the peak of anonymous memory, RssAnon, sampled every 0.3 ms, two runs):
//! on the baseline shape `generate --stream --threads 1` 33.4–33.6 → 66.0–66.6 tokens/s
//! (3.92–4.04 → 4.23 MB), with `--threads 2` 33–38 → 73–101 (4.68 → 5.17–5.18 MB); `eval
//! --stream` of two 1,024-token windows 741–754 → 1107–1116 tokens/s (13.40 → 13.94–14.02 MB),
//! with two threads 1143–1209 → 2021–2056 (15.36–15.37 → 16.16–17.31 MB); on the demo model
//! `generate` 739–793 → 938–947 (3.13 → 3.07 MB) and `eval` 14.2–14.3 → 17.7–18.8 k tokens/s
//! (2.17 → 1.87 MB). These figures include the runtime's own change of that day (a pass's
//! order learned from its whole first step). Without the one arena the same thresholds gave
//! the baseline shape's `eval` 15.5–15.7 MB; a 512 KiB threshold, 60–62 tokens/s.
//!
//! This is process policy, so it lives in the binary: the runtime library has no unsafe code
//! and leaves its host's allocator alone.

/// The mmap threshold [`return_freed_memory`] sets, in bytes: blocks of at least this many are
/// mapped on their own and go back to the system when freed. 64 KiB saved 0.8 MB on the
/// baseline shape at 2.5× the time (the GEMM's packing buffers mapped on every product);
/// 1 MiB keeps every decoded matrix of that shape (and its payload) in the heap.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// The free heap top [`return_freed_memory`] lets glibc keep instead of giving it back, in
/// bytes (its default is 128 KiB). A bound on what the setting can add to the peak.
pub const TRIM_THRESHOLD: usize = 4 << 20;

/// The most malloc arenas [`return_freed_memory`] lets glibc make (by default up to eight a
/// core, one for each thread that allocates, each with its own free memory).
pub const ARENA_MAX: usize = 1;

/// Asks the C allocator to map every block of at least [`MMAP_THRESHOLD`] bytes on its own
/// and unmap it when freed (glibc `mallopt(M_MMAP_THRESHOLD)`, which also stops the dynamic
/// adjustment), to keep up to [`TRIM_THRESHOLD`] of free heap top (`M_TRIM_THRESHOLD`) and
/// to keep one arena for all threads (`M_ARENA_MAX`). Returns whether the allocator accepted
/// all three; elsewhere than glibc it does nothing and returns false.
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
const SETTINGS: [(libc::c_int, usize); 3] = [
    (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    (libc::M_ARENA_MAX, ARENA_MAX),
];

/// Asks the C allocator to return large freed blocks (only glibc is tuned; false here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_freed_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    /// The tests that read this process's resident memory, one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
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

    /// A block under the mmap threshold comes from the heap and stays resident when freed
    /// (for the next step's tensor of its size); one over it goes back at once. With the
    /// threshold at 128 KiB the first half fails (its 512 KiB go back).
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn blocks_under_the_threshold_stay_and_larger_ones_go_back() {
        assert!(super::return_freed_memory());
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        for (kib, stays) in [(512u64, true), (4096, false)] {
            let block = vec![1u8; (kib as usize) << 10];
            let held = rss_anon_kib();
            drop(block);
            let freed = held.saturating_sub(rss_anon_kib());
            assert_eq!(
                freed < kib / 4,
                stays,
                "{kib} KiB block: {held} KiB held, {freed} KiB given back"
            );
        }
    }

    /// Small blocks (heap, not mapped) freed together stay resident up to the trim threshold:
    /// with glibc's default (128 KiB) the 768 KiB below would mostly go back to the system at
    /// the last free, to be faulted in again by the next step of a stream.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_freed_heap_top_stays_resident() {
        assert!(super::return_freed_memory());
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
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
