//! Which backends a router may choose from: healthy ones, minus those a retry already tried.
//!
//! Everything here walks the `backends` slice by index: no allocation, no strings, so it is
//! cheap enough for every request.

use crate::{BackendStats, RetryContext};

/// Indexes of the healthy backends, in order.
///
/// ```
/// use lbx_guest::{healthy_indices, testkit::backend};
///
/// let backends = [backend(true, 0), backend(false, 0), backend(true, 5)];
/// assert_eq!(healthy_indices(&backends).collect::<Vec<_>>(), [0, 2]);
/// ```
pub fn healthy_indices(backends: &[BackendStats]) -> impl Iterator<Item = usize> + '_ {
    backends
        .iter()
        .enumerate()
        .filter_map(|(index, b)| b.healthy.then_some(index))
}

/// The backends a router should choose from for this attempt.
///
/// These are the healthy backends, excluding those listed in [`RetryContext::tried`] as long as
/// at least one healthy backend has not been tried; when every healthy backend was tried, all
/// healthy backends are candidates again (a second try beats no answer). Empty only when no
/// backend is healthy.
///
/// `Candidates` is a view (two slices), `Copy`, and never allocates; each method walks the
/// backends once.
///
/// ```
/// use lbx_guest::{Candidates, testkit::{all_healthy, retry}};
///
/// let backends = all_healthy(3);
/// // Backend 1 failed this request: the retry goes elsewhere.
/// let tried = retry(&[1]);
/// let candidates = Candidates::new(&backends, &tried);
/// assert_eq!(candidates.iter().collect::<Vec<_>>(), [0, 2]);
/// assert!(!candidates.contains(1));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Candidates<'a> {
    backends: &'a [BackendStats],
    /// Indexes to skip; empty when nothing is to be avoided.
    avoid: &'a [u32],
}

impl<'a> Candidates<'a> {
    /// The candidates for this attempt of the request.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::{all_healthy, retry}};
    ///
    /// let backends = all_healthy(2);
    /// // Both were tried: both are candidates again.
    /// let tried = retry(&[0, 1]);
    /// assert_eq!(Candidates::new(&backends, &tried).count(), 2);
    /// ```
    pub fn new(backends: &'a [BackendStats], retry: &'a RetryContext) -> Self {
        let avoid = retry.tried.as_slice();
        // First attempts (nothing tried) skip the scan.
        let fresh_exists = avoid.is_empty()
            || backends
                .iter()
                .enumerate()
                .any(|(index, b)| b.healthy && !listed(avoid, index));
        Candidates {
            backends,
            avoid: if fresh_exists { avoid } else { &[] },
        }
    }

    /// All healthy backends, ignoring retries.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::backend};
    ///
    /// let backends = [backend(false, 0), backend(true, 0)];
    /// assert_eq!(Candidates::healthy(&backends).iter().collect::<Vec<_>>(), [1]);
    /// ```
    pub fn healthy(backends: &'a [BackendStats]) -> Self {
        Candidates {
            backends,
            avoid: &[],
        }
    }

    /// The backends this view was built from, indexed like the candidates.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::loads};
    ///
    /// let backends = loads(&[3, 1]);
    /// let candidates = Candidates::healthy(&backends);
    /// assert_eq!(candidates.backends()[1].in_flight, 1);
    /// ```
    pub fn backends(&self) -> &'a [BackendStats] {
        self.backends
    }

    /// Whether the backend at `index` is a candidate.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::backend};
    ///
    /// let backends = [backend(true, 0), backend(false, 0)];
    /// let candidates = Candidates::healthy(&backends);
    /// assert!(candidates.contains(0));
    /// assert!(!candidates.contains(1));
    /// assert!(!candidates.contains(7));
    /// ```
    pub fn contains(&self, index: usize) -> bool {
        self.backends.get(index).is_some_and(|b| b.healthy) && !listed(self.avoid, index)
    }

    /// Candidate indexes in increasing order.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::all_healthy};
    ///
    /// let backends = all_healthy(3);
    /// assert_eq!(Candidates::healthy(&backends).iter().collect::<Vec<_>>(), [0, 1, 2]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = usize> + 'a {
        let this = *self;
        (0..self.backends.len()).filter(move |&index| this.contains(index))
    }

    /// Candidate indexes in rotation order: those at or after `start` (taken modulo the number
    /// of backends), then those before it. Lets a router break ties fairly by moving `start`.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::all_healthy};
    ///
    /// let backends = all_healthy(4);
    /// let order: Vec<_> = Candidates::healthy(&backends).iter_from(2).collect();
    /// assert_eq!(order, [2, 3, 0, 1]);
    /// ```
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = usize> + 'a {
        let this = *self;
        let len = self.backends.len();
        let start = if len == 0 { 0 } else { start % len };
        (start..len)
            .chain(0..start)
            .filter(move |&index| this.contains(index))
    }

    /// How many candidates there are.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::backend};
    ///
    /// let backends = [backend(true, 0), backend(false, 0), backend(true, 0)];
    /// assert_eq!(Candidates::healthy(&backends).count(), 2);
    /// ```
    pub fn count(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is no candidate, i.e. no backend is healthy.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::backend};
    ///
    /// let backends = [backend(false, 0)];
    /// assert!(Candidates::healthy(&backends).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The index of the `n`-th candidate (counting from 0), if there are more than `n`.
    ///
    /// ```
    /// use lbx_guest::{Candidates, testkit::backend};
    ///
    /// let backends = [backend(false, 0), backend(true, 0), backend(true, 0)];
    /// assert_eq!(Candidates::healthy(&backends).nth(1), Some(2));
    /// assert_eq!(Candidates::healthy(&backends).nth(2), None);
    /// ```
    pub fn nth(&self, n: usize) -> Option<usize> {
        self.iter().nth(n)
    }
}

fn listed(indexes: &[u32], index: usize) -> bool {
    indexes.iter().any(|&i| usize::try_from(i) == Ok(index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{all_healthy, backend, first_attempt, retry};

    #[test]
    fn first_attempt_candidates_are_the_healthy_backends() {
        let backends = [backend(true, 0), backend(false, 0), backend(true, 0)];
        let attempt = first_attempt();
        let candidates = Candidates::new(&backends, &attempt);
        assert_eq!(candidates.iter().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(candidates.count(), 2);
    }

    #[test]
    fn tried_backends_are_avoided_while_an_untried_healthy_one_exists() {
        let backends = [backend(true, 0), backend(false, 0), backend(true, 0)];
        let tried = retry(&[0]);
        let candidates = Candidates::new(&backends, &tried);
        assert_eq!(candidates.iter().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn tried_backends_come_back_when_every_healthy_one_was_tried() {
        let backends = [backend(true, 0), backend(false, 0), backend(true, 0)];
        let tried = retry(&[0, 2]);
        let candidates = Candidates::new(&backends, &tried);
        assert_eq!(candidates.iter().collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn no_healthy_backend_means_no_candidate() {
        let backends = [backend(false, 0), backend(false, 0)];
        let attempt = first_attempt();
        let candidates = Candidates::new(&backends, &attempt);
        assert!(candidates.is_empty());
        assert_eq!(candidates.iter_from(1).next(), None);
    }

    #[test]
    fn out_of_range_tried_indexes_are_ignored() {
        let backends = all_healthy(2);
        let tried = retry(&[9, u32::MAX]);
        assert_eq!(Candidates::new(&backends, &tried).count(), 2);
    }

    #[test]
    fn rotation_wraps_around_and_skips_non_candidates() {
        let backends = [
            backend(true, 0),
            backend(false, 0),
            backend(true, 0),
            backend(true, 0),
        ];
        let order: Vec<_> = Candidates::healthy(&backends).iter_from(5).collect();
        assert_eq!(order, [2, 3, 0]);
    }

    #[test]
    fn rotation_over_no_backends_is_empty() {
        assert_eq!(Candidates::healthy(&[]).iter_from(3).count(), 0);
    }
}
