//! Process-wide CPU settings for a training or extraction run, set once at the start of `main`.
//!
//! Three defaults of the stack under Candle cost a CPU run about half its time without doing any
//! arithmetic (measured on `pe_cxr`, docs/benchmarks.md):
//!
//! - **Thread count lookups.** Candle 0.11 asks for its thread count at every matrix product, and
//!   when `RAYON_NUM_THREADS` is unset it counts physical cores by reading and parsing
//!   `/proc/cpuinfo` each time. [`tune_cpu_process`] fixes the variable to the count Candle would
//!   find, so the lookup is an environment read; the count, and so every result, stays the same.
//! - **Freed memory handed back to the kernel.** glibc serves large blocks from fresh `mmap`s and
//!   trims the heap top as soon as it is free; a training step frees and reallocates its
//!   activation and gradient buffers, so each step's buffers were new pages the kernel had to fault
//!   in and zero (47.8 million page faults, 217 s of system time in a 521 s run).
//!   [`tune_cpu_process`] tells malloc to keep freed memory in one heap, so those buffers come back
//!   from it, as PyTorch's caching allocator does on its side.
//! - **Thread hand-offs.** Candle's convolutions split their batch with rayon; from a thread
//!   outside rayon's pool each split wakes a worker and sleeps until it is done. [`on_pool`] runs a
//!   program on a pool worker, where the split is a join.
//!
//! None changes a number: a run's outputs are bit-identical with and without them.
//!
//! ```
//! let tuning = cmkd_train::process::tune_cpu_process();
//! let sum = cmkd_train::process::on_pool(|| (1..=10).sum::<u32>());
//! assert_eq!(sum, 55);
//! assert!(tuning.rayon_threads >= 1);
//! ```

/// What [`tune_cpu_process`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessTuning {
    /// Threads of Candle's matrix products (and element-wise pool): `RAYON_NUM_THREADS`.
    pub candle_threads: usize,
    /// Whether this call set `RAYON_NUM_THREADS` (false when the user had set it).
    pub fixed_thread_env: bool,
    /// Threads of rayon's global pool (med-io, t-SNE, bootstrap and Candle's convolutions).
    pub rayon_threads: usize,
    /// Whether glibc malloc now keeps freed memory (false off glibc, or when `GLIBC_TUNABLES`
    /// already configures malloc).
    pub malloc_keeps_memory: bool,
}

/// Stack of rayon's worker threads: what a main thread gets on Linux, since [`on_pool`] runs a
/// whole program there.
const WORKER_STACK: usize = 8 << 20;

/// Applies the settings of the [module docs](self) and says what it did.
///
/// Call it first thing in `main`, before any thread is started: it sets an environment variable,
/// which is only sound while no other thread reads the environment, and builds rayon's global pool
/// (with an 8 MiB stack per worker, for [`on_pool`]). What the user set wins: with
/// `RAYON_NUM_THREADS` set, the thread counts are left alone; with a `glibc.malloc` entry in
/// `GLIBC_TUNABLES`, malloc is.
pub fn tune_cpu_process() -> ProcessTuning {
    let user_threads = std::env::var_os("RAYON_NUM_THREADS").is_some();
    // What rayon's global pool takes when the variable is unset; fixed here so that setting the
    // variable for Candle does not shrink it (rayon counts logical CPUs, Candle physical cores).
    let rayon_default = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let candle_threads = candle_core::utils::get_num_threads();
    // Before any other thread exists: a thread that allocated before it has its own arena.
    let malloc_keeps_memory = keep_freed_memory();
    let mut pool = rayon::ThreadPoolBuilder::new().stack_size(WORKER_STACK);
    if !user_threads {
        std::env::set_var("RAYON_NUM_THREADS", candle_threads.to_string());
        pool = pool.num_threads(rayon_default);
    }
    // Fails only when the pool already exists (someone used rayon before this call); it then
    // keeps what it was built with.
    let _ = pool.build_global();
    ProcessTuning {
        candle_threads,
        fixed_thread_env: !user_threads,
        rayon_threads: rayon::current_num_threads(),
        malloc_keeps_memory,
    }
}

/// Runs `f` on a thread of rayon's global pool and returns its result.
///
/// Candle's convolutions split their batch with rayon. Called from a thread outside the pool,
/// each split hands the work to a sleeping worker and puts the caller to sleep until it is done
/// (two futex wake-ups per convolution); called from a worker, it is a join the caller takes part
/// in. A small CNN's training step is made of such short calls (docs/benchmarks.md). Results are
/// the same bit for bit.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() -> bool {
    let user_tuned = std::env::var("GLIBC_TUNABLES")
        .map(|t| t.contains("glibc.malloc."))
        .unwrap_or(false);
    if user_tuned {
        return false;
    }
    // SAFETY: mallopt only changes allocator parameters (under the arena locks); blocks already
    // handed out are unaffected. It returns 1 on success.
    unsafe {
        // No block from its own mmap: large buffers come from the heap and are reused when freed.
        let no_mmap = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
        // Keep up to 2 GiB of free memory at the heap's top instead of returning it at once.
        let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1;
        // One arena for every thread: the arenas of other threads live in 64 MiB mappings that
        // glibc unmaps when empty and cannot hold larger blocks (those get their own mapping
        // whatever M_MMAP_MAX says), which brings the page faults back for a program running on
        // a rayon worker (`on_pool`).
        let one_arena = libc::mallopt(libc::M_ARENA_MAX, 1) == 1;
        no_mmap && no_trim && one_arena
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() -> bool {
    false
}
