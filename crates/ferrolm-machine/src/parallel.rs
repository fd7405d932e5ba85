//! Independent, pure work spread over the cores: opening thousands of Olm sessions (an
//! X25519 triple each) and checking their one-time keys' signatures; encrypting a room key
//! to thousands of devices, each over its own session ([`map_mut`]).
//!
//! [`map`] and [`map_mut`] return their results in the input's order, whatever thread
//! computed them, so a step's outcome does not depend on the number of cores. The calling thread works too;
//! one thread per further core joins it for inputs of at least two blocks. Threads take the
//! next block from a shared counter, so a core another process slows down simply does fewer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Items per block taken by a thread.
const BLOCK: usize = 64;

/// `f` applied to every item, on every core, in order.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let blocks = items.len().div_ceil(BLOCK);
    if threads < 2 || blocks < 2 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let block = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = items.chunks(BLOCK).nth(block) else { break };
            done.push((block, part.iter().map(&f).collect::<Vec<R>>()));
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
    finished.sort_unstable_by_key(|(block, _)| *block);
    finished.into_iter().flat_map(|(_, part)| part).collect()
}

/// `f` applied to every item, each item changed in place by the thread that takes it, on
/// every core, the results in order. Every item is given to exactly one call of `f`.
pub(crate) fn map_mut<T: Send, R: Send>(items: &mut [T], f: impl Fn(&mut T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let blocks = items.len().div_ceil(BLOCK);
    if threads < 2 || blocks < 2 {
        return items.iter_mut().map(&f).collect();
    }
    // The blocks, handed out one at a time: each is borrowed by one thread only.
    let next = Mutex::new(items.chunks_mut(BLOCK).enumerate());
    let work = || {
        let mut done = Vec::new();
        loop {
            // A poisoned lock means another thread panicked: its panic is raised below.
            let taken = match next.lock() {
                Ok(mut blocks) => blocks.next(),
                Err(_) => None,
            };
            let Some((block, part)) = taken else { break };
            done.push((block, part.iter_mut().map(&f).collect::<Vec<R>>()));
        }
        done
    };
    let mut finished = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(blocks)).map(|_| scope.spawn(work)).collect();
        let mut finished = work();
        for helper in helpers {
            match helper.join() {
                Ok(done) => finished.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        finished
    });
    finished.sort_unstable_by_key(|(block, _)| *block);
    finished.into_iter().flat_map(|(_, part)| part).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_the_input_order() {
        for n in [0, 1, 63, 64, 65, 1000] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(super::map(&items, |i| i * 3), items.iter().map(|i| i * 3).collect::<Vec<_>>());
        }
    }

    #[test]
    fn every_item_is_changed_once_and_results_come_in_order() {
        for n in [0, 1, 63, 64, 65, 1000] {
            let mut items: Vec<usize> = (0..n).collect();
            let results = super::map_mut(&mut items, |i| {
                *i += 1;
                *i * 2
            });
            assert_eq!(items, (1..=n).collect::<Vec<_>>());
            assert_eq!(results, (1..=n).map(|i| i * 2).collect::<Vec<_>>());
        }
    }
}
