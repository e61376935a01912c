//! A closed standard output is a normal end, not an error: `pcll inspect m.pcll | head` must
//! stop quietly when `head` has read enough.
//!
//! Rust starts programs with SIGPIPE ignored, so a write to a closed pipe returns EPIPE and
//! `println!` panics ("failed printing to stdout: Broken pipe", exit 101). [`restore_sigpipe`]
//! puts back the default action, as C programs have it: the process then ends silently at
//! the first such write, which is what `head`, `grep -q` and shell pipelines expect.

/// Restores the default SIGPIPE action (terminate quietly). Unix only; elsewhere nothing.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn restore_sigpipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler code of ours; it only resets the
    // disposition of SIGPIPE, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Restores the default SIGPIPE action (Unix only; nothing here).
#[cfg(not(unix))]
pub fn restore_sigpipe() {}
