//! The order in which a forward pass misses its tensors, learned from its first whole step, for
//! whoever decodes ahead of the asking ([`crate::stream::Streamed`]'s groups and its
//! prefetching thread).
//!
//! A step is marked by [`crate::Weights::begin_step`] ([`crate::Model`] calls it first in every
//! pass), not guessed from the first tensor asked for again: a pass may ask for a tensor more
//! than once (a tied embedding at the input and at the output head, the skip weights of a
//! U-Net-style stack, the embedding a long window reads again in every block), and learning at
//! the first repeat left the demo model's last block out of every group in `generate`, and
//! every block out of them in `eval`.

use std::collections::BTreeSet;
use std::vec::Vec;

/// How far learning has got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No step begun yet.
    #[default]
    Waiting,
    /// In the first whole step: misses are recorded.
    Recording,
    /// The first whole step ended.
    Learned,
}

/// The misses of one whole step: all of them in order, each tensor once in the order first
/// missed, and which were missed more than once.
#[derive(Debug, Default)]
pub(crate) struct Order {
    phase: Phase,
    /// Every miss of the step, in order.
    sequence: Vec<u32>,
    /// Each tensor missed in the step, once, in the order first missed.
    tensors: Vec<u32>,
    /// Every tensor in `tensors`.
    seen: BTreeSet<u32>,
    /// Those missed more than once in the step: decoded where asked for, neither grouped nor
    /// grouped with others.
    repeated: BTreeSet<u32>,
}

impl Order {
    /// A step begins: `true` exactly when this ends the first whole step (learn now).
    pub(crate) fn begin_step(&mut self) -> bool {
        let (next, learned) = match self.phase {
            Phase::Waiting => (Phase::Recording, false),
            Phase::Recording => (Phase::Learned, true),
            Phase::Learned => (Phase::Learned, false),
        };
        self.phase = next;
        learned
    }

    /// Tensor `i` was missed: recorded in the first whole step. `true` when it is new to the
    /// order (so its caller records what else it needs of it).
    pub(crate) fn miss(&mut self, i: u32) -> bool {
        if self.phase != Phase::Recording {
            return false;
        }
        self.sequence.push(i);
        if self.seen.insert(i) {
            self.tensors.push(i);
            true
        } else {
            self.repeated.insert(i);
            false
        }
    }

    /// Every miss of the step, in order.
    pub(crate) fn sequence(&self) -> &[u32] {
        &self.sequence
    }

    /// The tensors of the step, each once, in the order first missed.
    pub(crate) fn tensors(&self) -> &[u32] {
        &self.tensors
    }

    /// Whether `i` was missed more than once in the step.
    pub(crate) fn repeated(&self, i: u32) -> bool {
        self.repeated.contains(&i)
    }
}

/// The position in `steps` (a step's every miss, in order) of a miss of `i` after a miss at
/// position `at` (`None`: the step has just begun): the next position of `i` after `at`,
/// cyclically; `None` when `i` is not in the step.
pub(crate) fn place(steps: &[u32], at: Option<usize>, i: u32) -> Option<usize> {
    let n = steps.len();
    let from = at.map_or(0, |a| a + 1);
    (0..n).map(|k| (from + k) % n).find(|&p| steps[p] == i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Misses before the first step and after the second are not recorded; a tensor missed
    /// twice in the step is recorded once and marked.
    #[test]
    fn the_first_whole_step_is_recorded() {
        let mut o = Order::default();
        assert!(!o.miss(9), "before any step");
        assert!(!o.begin_step());
        for (i, new) in [(4, true), (2, true), (4, false), (7, true), (2, false)] {
            assert_eq!(o.miss(i), new, "{i}");
        }
        assert!(o.begin_step(), "the second step ends the first");
        assert!(!o.miss(5), "after the step");
        assert!(!o.begin_step(), "learned once");
        assert_eq!(o.tensors(), &[4, 2, 7]);
        assert_eq!(o.sequence(), &[4, 2, 4, 7, 2]);
        assert_eq!(
            [4, 2, 7, 9, 5].map(|i| o.repeated(i)),
            [true, true, false, false, false]
        );
    }

    /// A miss is placed at its tensor's next position after the last miss's, wrapping round.
    #[test]
    fn a_miss_is_placed_at_the_next_position_of_its_tensor() {
        let steps = [4, 2, 4, 7, 4];
        assert_eq!(place(&steps, None, 4), Some(0));
        assert_eq!(place(&steps, Some(0), 4), Some(2));
        assert_eq!(place(&steps, Some(1), 7), Some(3));
        assert_eq!(place(&steps, Some(3), 4), Some(4));
        assert_eq!(place(&steps, Some(4), 4), Some(0), "wraps round");
        assert_eq!(place(&steps, Some(4), 2), Some(1));
        assert_eq!(place(&steps, Some(2), 9), None);
        assert_eq!(place(&[], None, 4), None);
    }
}
