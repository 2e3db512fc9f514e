//! Handles are ids, not pointers: a slot index plus the generation it had when it was handed
//! out. Releasing a slot bumps its generation, so an id kept after the release (a stale id) is
//! recognised everywhere and ignored.

/// Slot indices stay below this bound so that an id packs into a JavaScript number (53 bits).
const INDEX_BITS: u32 = 26;
const GENERATION_BITS: u32 = 53 - INDEX_BITS;
const MAX_SLOTS: u32 = 1 << INDEX_BITS;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// The id of one handle of a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotId {
    pub index: u32,
    pub generation: u32,
}

impl SlotId {
    /// The id as one integer below 2^53, exact as a JavaScript number.
    pub fn pack(self) -> u64 {
        (u64::from(self.generation) << INDEX_BITS) | u64::from(self.index)
    }

    /// The inverse of [`SlotId::pack`]. Values that `pack` never makes give ids that match no slot.
    pub fn unpack(packed: u64) -> SlotId {
        SlotId {
            index: (packed & u64::from(MAX_SLOTS - 1)) as u32,
            generation: (packed >> INDEX_BITS) as u32,
        }
    }
}

/// Hands out slot ids; shared (behind a mutex) by the JavaScript thread, which creates timers
/// and polls, and the loop thread, which releases slots once it has forgotten their handle.
#[derive(Debug, Default)]
pub struct SlotAllocator {
    /// Per slot: its current generation and whether an id of it is handed out.
    slots: Vec<(u32, bool)>,
    free: Vec<u32>,
}

impl SlotAllocator {
    /// A fresh id, or `None` when all 2^26 slots are in use.
    pub fn allocate(&mut self) -> Option<SlotId> {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.1 = true;
            return Some(SlotId { index, generation: slot.0 });
        }
        let index = u32::try_from(self.slots.len()).ok().filter(|&i| i < MAX_SLOTS)?;
        self.slots.push((0, true));
        Some(SlotId { index, generation: 0 })
    }

    /// Whether `id` is the id its slot currently carries.
    pub fn is_current(&self, id: SlotId) -> bool {
        self.slots.get(id.index as usize) == Some(&(id.generation, true))
    }

    /// Frees the slot of `id` for reuse. A stale id releases nothing and returns false.
    pub fn release(&mut self, id: SlotId) -> bool {
        match self.slots.get_mut(id.index as usize) {
            Some(slot) if *slot == (id.generation, true) => {
                *slot = ((id.generation + 1) & GENERATION_MASK, false);
                self.free.push(id.index);
                true
            }
            _ => false,
        }
    }
}

/// The loop thread's table of handles, indexed like the allocator's slots. An entry remembers
/// the generation of the id that created it, so lookups with a stale id find nothing.
#[derive(Debug)]
pub struct Slab<T> {
    entries: Vec<Option<(u32, T)>>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { entries: Vec::new() }
    }
}

impl<T> Slab<T> {
    /// Stores `value` under `id`, replacing whatever an older generation left there.
    pub fn insert(&mut self, id: SlotId, value: T) {
        let index = id.index as usize;
        if index >= self.entries.len() {
            self.entries.resize_with(index + 1, || None);
        }
        self.entries[index] = Some((id.generation, value));
    }

    pub fn get(&self, id: SlotId) -> Option<&T> {
        match self.entries.get(id.index as usize) {
            Some(Some((generation, value))) if *generation == id.generation => Some(value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, id: SlotId) -> Option<&mut T> {
        match self.entries.get_mut(id.index as usize) {
            Some(Some((generation, value))) if *generation == id.generation => Some(value),
            _ => None,
        }
    }

    /// The live entry at `index` with its full id (for events keyed by index alone).
    pub fn get_by_index_mut(&mut self, index: usize) -> Option<(SlotId, &mut T)> {
        match self.entries.get_mut(index) {
            Some(Some((generation, value))) => {
                Some((SlotId { index: index as u32, generation: *generation }, value))
            }
            _ => None,
        }
    }

    pub fn remove(&mut self, id: SlotId) -> Option<T> {
        let entry = self.entries.get_mut(id.index as usize)?;
        match entry {
            Some((generation, _)) if *generation == id.generation => entry.take().map(|(_, value)| value),
            _ => None,
        }
    }

    /// Every live entry, for closing them all when the loop stops.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.entries.drain(..).flatten().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_a_js_number() {
        let id = SlotId { index: MAX_SLOTS - 1, generation: GENERATION_MASK };
        let packed = id.pack();
        assert!(packed < (1u64 << 53));
        assert_eq!(SlotId::unpack(packed), id);
    }

    #[test]
    fn released_slots_are_reused_with_a_new_generation() {
        let mut slots = SlotAllocator::default();
        let first = slots.allocate().unwrap();
        assert!(slots.release(first));
        let second = slots.allocate().unwrap();
        assert_eq!(second.index, first.index);
        assert_ne!(second.generation, first.generation);
        assert!(!slots.release(first), "a stale id must release nothing");
        assert!(slots.is_current(second));
        assert!(!slots.is_current(first));
    }

    #[test]
    fn a_stale_id_finds_nothing_in_the_slab() {
        let mut slots = SlotAllocator::default();
        let mut slab = Slab::default();
        let old = slots.allocate().unwrap();
        slab.insert(old, "timer");
        assert_eq!(slab.remove(old), Some("timer"));
        slots.release(old);
        let new = slots.allocate().unwrap();
        slab.insert(new, "poll");
        assert_eq!(slab.get(old), None);
        assert_eq!(slab.get_mut(old), None);
        assert_eq!(slab.remove(old), None);
        assert_eq!(slab.get(new), Some(&"poll"));
    }
}
