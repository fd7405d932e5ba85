//! A bounded list of secret values that never leaves a copy of them in freed memory.
//!
//! `Vec` and `VecDeque` move their elements when they grow (the old block is freed with the
//! elements' bytes still in it) and leave stale copies in their spare capacity when elements
//! are removed or shifted (`Drop` never runs on those). [`SecretList`] allocates its whole
//! capacity once and never grows, zeroizes the slots an element leaves, and zeroizes its whole
//! block, spare capacity included, before freeing it.

use zeroize::{Zeroize, Zeroizing};

/// At most `capacity` values, oldest first, in one block allocated once.
pub(crate) struct SecretList<T: Zeroize> {
    items: Zeroizing<Vec<T>>,
    limit: usize,
}

impl<T: Zeroize> SecretList<T> {
    /// An empty list that can hold `capacity` values (allocated now, in full).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { items: Zeroizing::new(Vec::with_capacity(capacity)), limit: capacity }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    fn is_full(&self) -> bool {
        self.items.len() >= self.limit
    }

    pub(crate) fn iter(&self) -> core::slice::Iter<'_, T> {
        self.items.iter()
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.items.get(index)
    }

    /// Appends `item`; when the list is full, the oldest value is removed (and zeroized) first.
    pub(crate) fn push_evicting_oldest(&mut self, item: T) {
        if self.is_full() {
            drop(self.remove(0));
        }
        if !self.is_full() {
            self.items.push(item);
        }
    }

    /// Moves every value of `other` to the end of this list, oldest first, evicting this
    /// list's oldest values as needed. `other` is left empty (its block still zeroizes itself).
    pub(crate) fn append_evicting_oldest(&mut self, other: &mut Self) {
        for item in other.items.drain(..) {
            self.push_evicting_oldest(item);
        }
    }

    /// Inserts `item` as the oldest value, if there is room; returns whether it was inserted.
    pub(crate) fn push_oldest(&mut self, item: T) -> bool {
        if self.is_full() {
            return false;
        }
        self.items.insert(0, item);
        true
    }

    /// Removes and returns the value at `index`, shifting the later ones down, and zeroizes the
    /// slot that shifting leaves behind.
    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        if index >= self.items.len() {
            return None;
        }
        let item = self.items.remove(index);
        self.items.spare_capacity_mut().zeroize();
        Some(item)
    }
}

impl<T: Zeroize + Clone> Clone for SecretList<T> {
    /// A copy with the same capacity (a derived clone would allocate only for the current
    /// length, and then have to grow).
    fn clone(&self) -> Self {
        let mut copy = Self::with_capacity(self.limit);
        copy.items.extend(self.items.iter().cloned());
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_list_evicts_its_oldest_and_never_grows() {
        let mut list = SecretList::with_capacity(3);
        for i in 0..5u8 {
            list.push_evicting_oldest([i; 4]);
        }
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [[2; 4], [3; 4], [4; 4]]);
        assert_eq!(list.items.capacity(), 3);
        assert!(!list.push_oldest([9; 4]));
        assert_eq!(list.remove(1), Some([3; 4]));
        assert_eq!(list.remove(5), None);
        assert!(list.push_oldest([1; 4]));
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [[1; 4], [2; 4], [4; 4]]);
        let mut more = SecretList::with_capacity(2);
        more.push_evicting_oldest([5; 4]);
        more.push_evicting_oldest([6; 4]);
        let mut copy = list.clone();
        copy.append_evicting_oldest(&mut more);
        assert_eq!(more.len(), 0);
        assert_eq!(copy.iter().copied().collect::<Vec<_>>(), [[4; 4], [5; 4], [6; 4]]);
        assert_eq!(copy.items.capacity(), 3);
        assert_eq!(copy.len(), 3);
        assert_eq!(copy.get(0), Some(&[4; 4]));
    }
}
