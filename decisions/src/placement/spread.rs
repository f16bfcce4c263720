//! Spread repair: a function on a single node or zone lends one instance to a node or zone it
//! lacks, when one has room.

use super::planner::{Planner, Work};
use std::collections::BTreeSet;

impl Planner<'_> {
    /// Whether `work` should be on another node or zone than it is.
    fn lacks_spread(&self, work: &Work<'_>) -> bool {
        if work.desired < 2 {
            return false;
        }
        let nodes = (0..work.counts.len()).filter(|&i| work.holds(i)).count();
        nodes < 2 && self.cluster.ready.len() >= 2 || self.zones_held(work).len() < 2 && self.cluster.ready_zones >= 2
    }

    pub(super) fn zones_held<'z>(&'z self, work: &Work<'_>) -> BTreeSet<&'z str> {
        (0..work.counts.len())
            .filter(|&i| work.holds(i))
            .map(|i| self.cluster.zone(i))
            .filter(|z| !z.is_empty())
            .collect()
    }

    /// A function fully placed on one node or zone lends one instance (from its most loaded
    /// node, latest in its order) to be moved to a new node or zone, if one has room.
    pub(super) fn lend_for_spread(&mut self, work: &mut Work<'_>) {
        if work.need > 0 || !self.lacks_spread(work) {
            return;
        }
        let lender = (0..work.counts.len())
            .filter(|&i| work.counts[i] > 0)
            .max_by_key(|&i| (work.counts[i], work.rank[i]))
            .expect("a function with desired ≥ 2 and nothing to place has instances");
        work.counts[lender] -= 1;
        work.need = 1;
        work.lent_by = Some(lender);
    }

    /// Moves lent instances where they improve the spread, repeating while one move frees room
    /// for another; instances that found no such node return to their lender.
    pub(super) fn repair_spread(&mut self, works: &mut [Work<'_>]) {
        loop {
            let mut moved = false;
            for work in works.iter_mut().filter(|w| w.lent_by.is_some()) {
                if let Some(i) = self.pick(work, true) {
                    let lender = work.lent_by.take().expect("filtered on lent_by");
                    self.take(work, i, 1);
                    self.release(work, lender);
                    work.counts[i] += 1;
                    work.need = 0;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        for work in works.iter_mut() {
            if let Some(lender) = work.lent_by.take() {
                work.counts[lender] += 1;
                work.need = 0;
            }
        }
    }
}
