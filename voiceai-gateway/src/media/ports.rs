//! The RTP port pool: the even ports of a range, one per call, given back when the
//! call's socket is dropped.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

/// The even ports of `range`.
pub(super) fn even_ports(range: &RangeInclusive<u16>) -> impl Iterator<Item = u16> + use<> {
    let (start, end) = (*range.start(), *range.end());
    (start..=end).filter(|port| port % 2 == 0)
}

/// Free ports, least recently used first.
#[derive(Debug)]
pub(super) struct PortPool {
    free: Mutex<VecDeque<u16>>,
    first: u16,
    last: u16,
}

impl PortPool {
    /// A pool of the even ports of `range`, all free.
    pub(super) fn new(range: &RangeInclusive<u16>) -> Self {
        Self {
            free: Mutex::new(even_ports(range).collect()),
            first: *range.start(),
            last: *range.end(),
        }
    }

    /// The range's first and last port.
    pub(super) fn bounds(&self) -> (u16, u16) {
        (self.first, self.last)
    }

    /// How many ports are free.
    pub(super) fn free(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Takes the least recently used free port, if any.
    pub(super) fn take(self: &Arc<Self>) -> Option<PortLease> {
        let port = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()?;
        Some(PortLease {
            pool: Arc::clone(self),
            port,
        })
    }

    fn give_back(&self, port: u16) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(port);
    }
}

/// A port taken from the pool; back in the pool (at the end of the queue) when dropped.
#[derive(Debug)]
pub(super) struct PortLease {
    pool: Arc<PortPool>,
    port: u16,
}

impl PortLease {
    /// The port.
    pub(super) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.give_back(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_only_taken_once_and_given_back_last() {
        let pool = Arc::new(PortPool::new(&(10001..=10006)));
        assert_eq!(pool.free(), 3);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        let c = pool.take().unwrap();
        assert_eq!((a.port(), b.port(), c.port()), (10002, 10004, 10006));
        assert!(pool.take().is_none());
        drop(b);
        assert_eq!(pool.free(), 1);
        let again = pool.take().unwrap();
        assert_eq!(again.port(), 10004);
        drop((a, c, again));
        assert_eq!(pool.free(), 3);
        // The least recently used comes first.
        assert_eq!(pool.take().unwrap().port(), 10002);
    }

    #[test]
    fn a_range_up_to_the_last_port_does_not_overflow() {
        assert_eq!(
            even_ports(&(65530..=65535)).collect::<Vec<_>>(),
            [65530, 65532, 65534]
        );
        assert_eq!(even_ports(&(7..=7)).count(), 0);
    }
}
