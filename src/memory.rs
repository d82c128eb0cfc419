//! Giving freed memory back to the system once the agent goes idle.
//!
//! glibc keeps what a check freed (a 50 MB config-get reply, the gzip of it)
//! in its arenas, one per thread that allocated, so an idle agent would keep
//! the peak of its last check. `malloc_trim` returns the free pages.

/// Returns the allocator's free memory to the system (glibc; elsewhere nothing).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain size and only walks glibc's own arenas under their
    // locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
