//! The one parallel map of the library: rayon on a pool of the caller's `threads` (the
//! binaries' `--threads`), results in item order. Every per-item result is a pure function of
//! its item (each worker has its own scratch state; seeds are per item), so the output does not
//! depend on the number of threads or on scheduling.

use crate::{Error, Result};
use rayon::prelude::*;

/// Runs `work` on a rayon pool of `threads` workers (at least one).
pub fn on_threads<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> Result<R> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Config(format!("cannot start {threads} worker threads: {e}")))?;
    Ok(pool.install(work))
}

/// `f(state, index, item)` for every item on `threads` workers, each worker with its own
/// `state` made by `init`; the results in item order. One thread (or one item) runs here,
/// without a pool.
pub fn map<T, S, R>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &T) -> R + Sync + Send,
) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
{
    if threads <= 1 || items.len() <= 1 {
        let mut state = init();
        return Ok(items.iter().enumerate().map(|(i, item)| f(&mut state, i, item)).collect());
    }
    on_threads(threads.min(items.len()), || {
        items.par_iter().enumerate().map_init(&init, |state, (i, item)| f(state, i, item)).collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_item_order_whatever_the_threads() {
        let items: Vec<u64> = (0..1000).collect();
        let want: Vec<u64> = items.iter().map(|x| x * x + 1).collect();
        for threads in [0, 1, 2, 7] {
            let got = super::map(&items, threads, || 1u64, |one, i, x| x * items[i] + *one).unwrap();
            assert_eq!(got, want, "{threads} threads");
        }
    }
}
