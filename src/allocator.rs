//! The memory allocator of vecfusion's programs: mimalloc, keeping freed memory for reuse.
//!
//! An embedding model on candle allocates a fresh tensor for every operator of every layer:
//! blocks of 1–10 MB, freed a moment later. glibc's malloc serves blocks that size with
//! `mmap` and returns them to the OS on free, so every operator page-faults and zeroes its
//! memory again (22 % of the CPU time of an embedding run was the kernel's); mimalloc's
//! default purges freed memory after 10 ms, with much the same effect. Purging turned off,
//! the blocks are reused: all-MiniLM-L6-v2 over 600 docstring paragraphs (release, 2 vCPU
//! EPYC Zen 4) took 6.8 s (embedder) / 7.1 s (`INSERT ... SELECT minilm(text)`) with glibc,
//! 5.4 / 5.8–6.2 s so. The process keeps its peak heap (947 MB against 921 MB there).
//!
//! A library does not choose a process's allocator: the shell, the bench binary and the
//! Python module declare `#[global_allocator] static GLOBAL: MiMalloc = MiMalloc;` and call
//! [`keep_freed_memory`] first; Rust programs embedding vecfusion may do the same.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h` (`libmimalloc-sys` names the options
/// around it but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed memory to the OS (see the module docs). Harmless
/// where mimalloc is not the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: sets one integer option of mimalloc's option table; -1 is a documented value
    // ("no purging at all"), and options may be set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
