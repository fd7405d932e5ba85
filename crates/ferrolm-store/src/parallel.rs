//! Sealing a large change set on every core: each record's lookup key (keyed hashes) and
//! sealed value (XChaCha20-Poly1305) do not depend on the others, and the back end then
//! writes the rows in order, in one transaction, on the calling thread.
//!
//! [`map`] returns its results in the input's order, whatever thread computed them. The
//! calling thread works too; one thread per further core joins it for inputs of at least two
//! blocks (a platform without threads reports one core: everything runs on the caller).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items per block taken by a thread.
const BLOCK: usize = 128;

/// `f` applied to every item, on every core, in order.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let blocks = items.len().div_ceil(BLOCK);
    if blocks < 2 {
        return items.iter().map(&f).collect();
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 {
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

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_the_input_order() {
        for n in [0, 1, 127, 128, 129, 1000] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(super::map(&items, |i| i * 3), items.iter().map(|i| i * 3).collect::<Vec<_>>());
        }
    }
}
