//! [`EventIds`]: the ids an event concerns ([`crate::Event::channel_ids`] and its
//! siblings), held inline. A client's router asks every event for all four lists, so a
//! known event must not cost an allocation for them.

use std::fmt;
use std::iter::FusedIterator;
use std::ops::Deref;

use crate::generated::events::MAX_EVENT_IDS;

/// Ids of the objects of one kind (channels, bridges, ...) that an event concerns, in the
/// order of the event's fields.
///
/// Up to [`EventIds::INLINE_CAPACITY`] ids, the most any known event has, are held without
/// allocating; only more (an [`crate::Event::Unknown`] with many objects) go to the heap.
/// Use it as a slice (`ids.contains(&"1700000000.1")`, `ids.len()`) or iterate it.
#[derive(Clone)]
pub struct EventIds<'a> {
    repr: Repr<'a>,
}

#[derive(Clone)]
enum Repr<'a> {
    /// `ids[..len]` are the ids; `len <= INLINE_CAPACITY`.
    Inline {
        len: usize,
        ids: [&'a str; MAX_EVENT_IDS],
    },
    Heap(Vec<&'a str>),
}

impl<'a> EventIds<'a> {
    /// How many ids are held without allocating: the most any known event has.
    pub const INLINE_CAPACITY: usize = MAX_EVENT_IDS;

    /// No ids.
    pub const fn new() -> Self {
        EventIds {
            repr: Repr::Inline {
                len: 0,
                ids: [""; MAX_EVENT_IDS],
            },
        }
    }

    /// Whether the ids are held inline, without a heap allocation.
    pub fn is_inline(&self) -> bool {
        matches!(self.repr, Repr::Inline { .. })
    }

    /// Adds an id after the others, moving to the heap when the inline space is full.
    pub(crate) fn push(&mut self, id: &'a str) {
        match &mut self.repr {
            Repr::Inline { len, ids } => {
                if let Some(slot) = ids.get_mut(*len) {
                    *slot = id;
                    *len += 1;
                } else {
                    let mut heap = Vec::with_capacity(ids.len() * 2 + 1);
                    heap.extend_from_slice(ids);
                    heap.push(id);
                    self.repr = Repr::Heap(heap);
                }
            }
            Repr::Heap(heap) => heap.push(id),
        }
    }
}

impl Default for EventIds<'_> {
    fn default() -> Self {
        EventIds::new()
    }
}

impl<'a> Deref for EventIds<'a> {
    type Target = [&'a str];

    fn deref(&self) -> &[&'a str] {
        match &self.repr {
            Repr::Inline { len, ids } => ids.get(..*len).unwrap_or_default(),
            Repr::Heap(heap) => heap,
        }
    }
}

impl<'a> AsRef<[&'a str]> for EventIds<'a> {
    fn as_ref(&self) -> &[&'a str] {
        self
    }
}

impl fmt::Debug for EventIds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Extend<&'a str> for EventIds<'a> {
    fn extend<I: IntoIterator<Item = &'a str>>(&mut self, iter: I) {
        for id in iter {
            self.push(id);
        }
    }
}

impl<'a> FromIterator<&'a str> for EventIds<'a> {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut ids = EventIds::new();
        ids.extend(iter);
        ids
    }
}

impl<'a, const N: usize> From<[&'a str; N]> for EventIds<'a> {
    fn from(array: [&'a str; N]) -> Self {
        array.into_iter().collect()
    }
}

impl Eq for EventIds<'_> {}

impl<'b> PartialEq<EventIds<'b>> for EventIds<'_> {
    fn eq(&self, other: &EventIds<'b>) -> bool {
        **self == **other
    }
}

impl<'b> PartialEq<[&'b str]> for EventIds<'_> {
    fn eq(&self, other: &[&'b str]) -> bool {
        **self == *other
    }
}

impl<'b> PartialEq<&[&'b str]> for EventIds<'_> {
    fn eq(&self, other: &&[&'b str]) -> bool {
        **self == **other
    }
}

impl<'b, const N: usize> PartialEq<[&'b str; N]> for EventIds<'_> {
    fn eq(&self, other: &[&'b str; N]) -> bool {
        **self == other[..]
    }
}

impl<'b> PartialEq<Vec<&'b str>> for EventIds<'_> {
    fn eq(&self, other: &Vec<&'b str>) -> bool {
        **self == other[..]
    }
}

impl<'a> IntoIterator for EventIds<'a> {
    type Item = &'a str;
    type IntoIter = IntoIter<'a>;

    fn into_iter(self) -> IntoIter<'a> {
        IntoIter {
            repr: match self.repr {
                Repr::Inline { len, ids } => IterRepr::Inline(ids.into_iter().take(len)),
                Repr::Heap(heap) => IterRepr::Heap(heap.into_iter()),
            },
        }
    }
}

impl<'s, 'a> IntoIterator for &'s EventIds<'a> {
    type Item = &'s &'a str;
    type IntoIter = std::slice::Iter<'s, &'a str>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The ids of an [`EventIds`], by value.
#[derive(Debug, Clone)]
pub struct IntoIter<'a> {
    repr: IterRepr<'a>,
}

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Inline(std::iter::Take<std::array::IntoIter<&'a str, MAX_EVENT_IDS>>),
    Heap(std::vec::IntoIter<&'a str>),
}

impl<'a> Iterator for IntoIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.repr {
            IterRepr::Inline(ids) => ids.next(),
            IterRepr::Heap(ids) => ids.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.repr {
            IterRepr::Inline(ids) => ids.size_hint(),
            IterRepr::Heap(ids) => ids.size_hint(),
        }
    }
}

impl DoubleEndedIterator for IntoIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.repr {
            IterRepr::Inline(ids) => ids.next_back(),
            IterRepr::Heap(ids) => ids.next_back(),
        }
    }
}

impl ExactSizeIterator for IntoIter<'_> {}

impl FusedIterator for IntoIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn many(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id-{i}")).collect()
    }

    #[test]
    fn the_inline_capacity_holds_without_the_heap_and_more_spills_in_order() {
        let names = many(EventIds::INLINE_CAPACITY + 3);
        let mut ids = EventIds::new();
        assert!(ids.is_empty() && ids.is_inline());
        for (count, name) in names.iter().enumerate() {
            ids.push(name);
            assert_eq!(ids.len(), count + 1);
            assert_eq!(ids.is_inline(), count < EventIds::INLINE_CAPACITY);
        }
        let expected: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(ids, expected);
        assert_eq!(ids.clone().into_iter().collect::<Vec<_>>(), expected);
        assert_eq!(
            ids.clone().into_iter().rev().collect::<Vec<_>>(),
            expected.iter().rev().copied().collect::<Vec<_>>()
        );
        assert_eq!(ids.into_iter().len(), expected.len());
    }

    #[test]
    fn compares_and_prints_like_a_list() {
        let ids = EventIds::from(["a", "b"]);
        assert!(ids.is_inline());
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(ids, &["a", "b"][..]);
        let spilled: EventIds<'_> = ["x"; EventIds::INLINE_CAPACITY + 1].into_iter().collect();
        assert!(!spilled.is_inline());
        assert_eq!(spilled, ["x"; EventIds::INLINE_CAPACITY + 1]);
        assert_ne!(ids, spilled);
        assert_ne!(ids, ["b", "a"]);
        assert_ne!(ids, ["a"]);
        assert_eq!(format!("{ids:?}"), r#"["a", "b"]"#);
        assert_eq!(EventIds::default(), [""; 0]);
        let borrowed: Vec<&&str> = (&ids).into_iter().collect();
        assert_eq!(borrowed, [&"a", &"b"]);
        let mut inline = ids.into_iter();
        assert_eq!(inline.size_hint(), (2, Some(2)));
        assert_eq!(inline.next_back(), Some("b"));
        assert_eq!(inline.next(), Some("a"));
        assert_eq!(inline.next(), None);
    }
}
