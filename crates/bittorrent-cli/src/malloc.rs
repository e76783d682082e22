//! The process's allocator settings: glibc with one arena.
//!
//! glibc gives threads arenas of their own (up to 8 per core). Here blocks
//! are allocated on the runtime's worker threads (socket reads) and freed on
//! the torrent's writer thread after they are written and hashed, so each
//! free goes back to another thread's arena, and arenas trim memory only to
//! fault it back in. With one arena a 1 GiB download from 4 libtorrent
//! seeders measured 16.6 against 19.1 MiB peak RSS and 1.39 against 1.46
//! CPU-s (medians of 5; two arenas gained nothing, mimalloc the same CPU at
//! 58 MiB).

/// Sets glibc's arena count to one (a no-op elsewhere). Called first thing
/// in `main`, before any other thread exists.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters, and no other
    // thread exists yet to race with it.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
