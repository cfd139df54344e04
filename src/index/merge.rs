//! K-way merge of sorted streams whose reads can fail, for the two external sorts of a build:
//! hash records (`sink.rs`) and combolist rows (`combo.rs`). Errors are values: the first one is
//! the merge's next item, and the merge ends after it. Ties go to the earlier stream, so a merge is
//! stable and the same on every run.

use crate::error::Result;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Merges `sources`, each sorted, into one sorted stream.
pub struct KMerge<T, I> {
    sources: Vec<I>,
    heap: BinaryHeap<Reverse<(T, usize)>>,
    failed: bool,
    pending: Option<crate::Error>,
}

impl<T: Ord, I: Iterator<Item = Result<T>>> KMerge<T, I> {
    pub fn new(mut sources: Vec<I>) -> KMerge<T, I> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        let mut pending = None;
        for (i, s) in sources.iter_mut().enumerate() {
            match s.next() {
                Some(Ok(item)) => heap.push(Reverse((item, i))),
                Some(Err(e)) => {
                    pending.get_or_insert(e);
                }
                None => {}
            }
        }
        KMerge {
            sources,
            heap,
            failed: false,
            pending,
        }
    }
}

impl<T: Ord, I: Iterator<Item = Result<T>>> Iterator for KMerge<T, I> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.failed = true;
            return Some(Err(e));
        }
        let Reverse((item, i)) = self.heap.pop()?;
        match self.sources[i].next() {
            Some(Ok(next)) => self.heap.push(Reverse((next, i))),
            Some(Err(e)) => self.pending = Some(e),
            None => {}
        }
        Some(Ok(item))
    }
}

/// The `Ok` items of `it` up to its first error, which is kept in `error` for the caller to
/// return once the consumer (which takes plain items) is done.
pub fn until_error<'a, T>(
    it: impl Iterator<Item = Result<T>> + 'a,
    error: &'a mut Option<crate::Error>,
) -> impl Iterator<Item = T> + 'a {
    it.map_while(move |r| match r {
        Ok(v) => Some(v),
        Err(e) => {
            *error = Some(e);
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_in_order_ties_to_the_earlier_stream_and_stops_at_the_first_error() {
        let a = vec![Ok((1, 'a')), Ok((4, 'a')), Ok((4, 'b'))];
        let b = vec![Ok((1, 'b')), Ok((2, 'b'))];
        let m: Vec<_> = KMerge::new(vec![a.into_iter(), b.into_iter()])
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(m, [(1, 'a'), (1, 'b'), (2, 'b'), (4, 'a'), (4, 'b')]);
        let bad = vec![Ok(1), Err(crate::Error::Usage("disk".into())), Ok(9)];
        let good = vec![Ok(0), Ok(5)];
        let mut err = None;
        let got: Vec<i32> = until_error(
            KMerge::new(vec![bad.into_iter(), good.into_iter()]),
            &mut err,
        )
        .collect();
        assert_eq!(got, [0, 1]);
        assert!(matches!(err, Some(crate::Error::Usage(_))));
    }
}
