//! Independent work spread over the cores, the results in the input's order whatever thread
//! computed them, so an outcome never depends on the number of cores. The store seals a large
//! change set's records with it (each record's keyed hashes and sealed value stand alone; the
//! back end then writes the rows in order, in one transaction, on the calling thread), and
//! ferrolm-machine opens and encrypts over thousands of Olm sessions and decrypts backups
//! with it.
//!
//! The calling thread works too; one thread per further core joins it for inputs of at least
//! two blocks. Threads take the next block when they finish one, so a core another process
//! slows down simply does fewer. A platform without threads reports one core: everything runs
//! on the caller.
//!
//! ```
//! let squares = ferrolm_store::parallel::map(&[1u32, 2, 3], 64, |i| i * i);
//! assert_eq!(squares, [1, 4, 9]);
//! let mut counters = [0u32; 300];
//! let before = ferrolm_store::parallel::map_mut(&mut counters, 64, |c| {
//!     *c += 1;
//!     *c - 1
//! });
//! assert!(counters.iter().all(|c| *c == 1) && before.iter().all(|b| *b == 0));
//! ```

use std::sync::Mutex;

/// `f` applied to every item, `block` items at a time per thread, on every core, in order.
pub fn map<T: Sync, R: Send>(items: &[T], block: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let block = block.max(1);
    run(items.chunks(block), items.len().div_ceil(block), |part| part.iter().map(&f).collect())
}

/// `f` applied to every item, each changed in place by the one thread that takes it, `block`
/// items at a time per thread, on every core, the results in order.
pub fn map_mut<T: Send, R: Send>(items: &mut [T], block: usize, f: impl Fn(&mut T) -> R + Sync) -> Vec<R> {
    let block = block.max(1);
    let blocks = items.len().div_ceil(block);
    run(items.chunks_mut(block), blocks, |part| part.iter_mut().map(&f).collect())
}

/// Runs `f` on each of the `blocks` parts, handed out one at a time to the threads.
fn run<P: Send, R: Send>(
    parts: impl Iterator<Item = P> + Send,
    blocks: usize,
    f: impl Fn(P) -> Vec<R> + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || blocks < 2 {
        return parts.flat_map(f).collect();
    }
    let next = Mutex::new(parts.enumerate());
    let work = || {
        let mut done = Vec::new();
        loop {
            // A poisoned lock means another thread panicked: that panic is raised below.
            let taken = match next.lock() {
                Ok(mut parts) => parts.next(),
                Err(_) => None,
            };
            let Some((index, part)) = taken else { break };
            done.push((index, f(part)));
        }
        done
    };
    let mut finished = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(blocks)).map(|_| scope.spawn(work)).collect();
        let mut finished = work();
        for helper in helpers {
            // `f` does not panic; if it did, the panic is raised again here, as on one thread.
            match helper.join() {
                Ok(done) => finished.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        finished
    });
    finished.sort_unstable_by_key(|(index, _)| *index);
    finished.into_iter().flat_map(|(_, part)| part).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_the_input_order() {
        for n in [0, 1, 63, 64, 65, 127, 128, 129, 1000, 5000] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(super::map(&items, 64, |i| i * 3), items.iter().map(|i| i * 3).collect::<Vec<_>>());
        }
    }

    #[test]
    fn every_item_is_changed_once_and_results_come_in_order() {
        for n in [0, 1, 63, 64, 65, 1000] {
            let mut items: Vec<usize> = (0..n).collect();
            let results = super::map_mut(&mut items, 64, |i| {
                *i += 1;
                *i * 2
            });
            assert_eq!(items, (1..=n).collect::<Vec<_>>());
            assert_eq!(results, (1..=n).map(|i| i * 2).collect::<Vec<_>>());
        }
    }
}
