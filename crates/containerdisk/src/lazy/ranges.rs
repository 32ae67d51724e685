//! The map of the byte ranges a sparse copy holds: disjoint, sorted,
//! half-open intervals, merged as they grow.

use std::collections::BTreeMap;

/// A set of byte ranges `[start, end)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Ranges {
    /// start → end, disjoint and never adjacent (adjacent ones are merged).
    spans: BTreeMap<u64, u64>,
}

impl Ranges {
    /// Adds `[start, end)`, merging what it touches.
    pub(crate) fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // A span starting before `start` that reaches it.
        if let Some((&before, &before_end)) = self.spans.range(..=start).next_back()
            && before_end >= start
        {
            start = before;
            end = end.max(before_end);
        }
        // Spans starting inside `[start, end]` are swallowed.
        let swallowed: Vec<(u64, u64)> = self
            .spans
            .range(start..=end)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (span_start, span_end) in swallowed {
            self.spans.remove(&span_start);
            end = end.max(span_end);
        }
        self.spans.insert(start, end);
    }

    /// Whether all of `[start, end)` is present.
    pub(crate) fn covers(&self, start: u64, end: u64) -> bool {
        start >= end
            || self
                .spans
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &span_end)| span_end >= end)
    }

    /// The parts of `[start, end)` not present, in order.
    pub(crate) fn missing(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut cursor = start;
        if let Some((_, &span_end)) = self.spans.range(..=start).next_back() {
            cursor = cursor.max(span_end);
        }
        for (&span_start, &span_end) in self.spans.range(start..end) {
            if span_start > cursor {
                gaps.push((cursor, span_start.min(end)));
            }
            cursor = cursor.max(span_end);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        gaps
    }

    /// The first missing range at or after `from`, below `end`.
    pub(crate) fn first_gap(&self, from: u64, end: u64) -> Option<(u64, u64)> {
        self.missing(from, end).into_iter().next()
    }

    /// The bytes present.
    pub(crate) fn total(&self) -> u64 {
        self.spans.iter().map(|(start, end)| end - start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Ranges;

    #[test]
    fn spans_merge_and_gaps_show() {
        let mut ranges = Ranges::default();
        ranges.insert(10, 20);
        ranges.insert(30, 40);
        assert!(ranges.covers(12, 20));
        assert!(!ranges.covers(12, 21));
        assert_eq!(ranges.missing(0, 50), [(0, 10), (20, 30), (40, 50)]);
        assert_eq!(ranges.missing(15, 35), [(20, 30)]);
        ranges.insert(20, 30);
        assert_eq!(ranges.missing(0, 50), [(0, 10), (40, 50)]);
        assert!(ranges.covers(10, 40));
        ranges.insert(5, 45);
        assert_eq!(ranges.total(), 40);
        assert_eq!(ranges.first_gap(0, 50), Some((0, 5)));
        assert_eq!(ranges.first_gap(6, 50), Some((45, 50)));
        ranges.insert(0, 50);
        assert_eq!(ranges.first_gap(0, 50), None);
        assert!(ranges.covers(0, 50));
        ranges.insert(7, 7);
        assert_eq!(ranges.total(), 50);
    }

    #[test]
    fn overlapping_inserts_keep_one_span() {
        let mut ranges = Ranges::default();
        for (start, end) in [(0, 4), (8, 12), (3, 9), (12, 13), (20, 21)] {
            ranges.insert(start, end);
        }
        assert_eq!(ranges.missing(0, 22), [(13, 20), (21, 22)]);
        assert_eq!(ranges.total(), 14);
    }
}
