//! The judged records brought into one order: each batch's run sorted by the worker that judged
//! it ([`sort_run`]), then the runs merged and an address's duplicates across sources folded into
//! one record ([`merge_and_sort`]).

use super::{Finding, Record, Severity};
use rayon::prelude::*;

/// The order of records before duplicates are merged: by address, then owner and contact, so the
/// merge keeps the same values on every run.
fn record_order(a: &Record, b: &Record) -> std::cmp::Ordering {
    (&a.email, &a.owner, &a.contact, a.suspended, &a.findings).cmp(&(
        &b.email,
        &b.owner,
        &b.contact,
        b.suspended,
        &b.findings,
    ))
}

/// Sort the records of one judged batch (a run for [`merge_and_sort`]); done by the worker that
/// judged it, so the sorting is spread over the reading.
pub(super) fn sort_run(records: &mut [Record]) {
    records.sort_unstable_by(record_order);
}

/// The runs ([`sort_run`]) merged into one sequence in [`record_order`], each record moved once:
/// a binary heap of run numbers keyed by each run's next record. `push` takes them in order.
fn merge_runs(runs: Vec<Vec<Record>>, mut push: impl FnMut(Record)) {
    use std::collections::VecDeque;
    let mut runs: Vec<VecDeque<Record>> = runs
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(VecDeque::from)
        .collect();
    // Run i's next record comes before run j's (ties: the lower run first).
    let less =
        |runs: &[VecDeque<Record>], i: usize, j: usize| match (runs[i].front(), runs[j].front()) {
            (Some(a), Some(b)) => record_order(a, b).then(i.cmp(&j)).is_lt(),
            _ => unreachable!("runs in the heap are not empty"),
        };
    let sift_down = |runs: &[VecDeque<Record>], heap: &mut [usize], mut at: usize| loop {
        let (l, r) = (2 * at + 1, 2 * at + 2);
        let mut m = at;
        if l < heap.len() && less(runs, heap[l], heap[m]) {
            m = l;
        }
        if r < heap.len() && less(runs, heap[r], heap[m]) {
            m = r;
        }
        if m == at {
            return;
        }
        heap.swap(at, m);
        at = m;
    };
    let mut heap: Vec<usize> = (0..runs.len()).collect();
    for at in (0..heap.len() / 2).rev() {
        sift_down(&runs, &mut heap, at);
    }
    while let Some(&top) = heap.first() {
        if let Some(r) = runs[top].pop_front() {
            push(r);
        }
        if runs[top].is_empty() {
            let last = heap.pop().expect("not empty");
            if heap.is_empty() {
                break;
            }
            heap[0] = last;
        }
        sift_down(&runs, &mut heap, 0);
    }
}

/// One record per address (findings of duplicates merged), sorted by address; severity is the
/// worst finding's. `runs` are sorted by [`sort_run`].
///
/// Records arrive in no fixed order (accounts are judged in parallel), so duplicates are ordered by
/// owner and contact too: where they disagree, the smallest known value is kept, the same on every
/// run.
pub(super) fn merge_and_sort(runs: Vec<Vec<Record>>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::with_capacity(runs.iter().map(Vec::len).sum());
    merge_runs(runs, |r| match out.last_mut() {
        Some(last) if last.email == r.email => {
            last.findings.extend(r.findings);
            last.owner = last.owner.take().or(r.owner);
            last.contact = last.contact.take().or(r.contact);
            last.suspended |= r.suspended;
            last.homes.extend(r.homes);
        }
        _ => out.push(r),
    });
    out.par_iter_mut().for_each(|r| {
        r.findings.sort();
        r.findings.dedup();
        r.homes.sort();
        r.homes.dedup();
        r.severity = r
            .findings
            .iter()
            .map(Finding::severity)
            .max()
            .unwrap_or(Severity::Unknown);
    });
    out
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use crate::check::{CountSource, Home};

    fn rec(email: &str, owner: Option<&str>, source: usize, f: Finding) -> Record {
        Record {
            email: email.to_string(),
            domain: email.split('@').nth(1).unwrap_or("").to_string(),
            owner: owner.map(str::to_string),
            contact: None,
            suspended: false,
            severity: Severity::Unknown,
            findings: vec![f],
            homes: vec![Home {
                source,
                owner: owner.map(str::to_string),
            }],
        }
    }

    /// Records judged in sorted runs (one per batch) merge into the one order, duplicates across
    /// runs folded into one record, whatever order the runs arrived in.
    #[test]
    fn runs_merge_in_address_order_with_duplicates_folded() {
        let pwned = |count| Finding::PasswordPwned {
            count,
            source: CountSource::Hibp,
            seen: None,
        };
        let runs = || {
            let mut a = vec![
                rec("c@x.example", None, 0, pwned(3)),
                rec("a@x.example", Some("zed"), 0, pwned(1)),
                rec("e@x.example", None, 0, pwned(5)),
            ];
            let mut b = vec![
                rec("b@x.example", None, 1, pwned(2)),
                rec(
                    "a@x.example",
                    Some("amy"),
                    1,
                    Finding::CredentialsLeaked { count: 7 },
                ),
            ];
            let mut c = vec![rec("d@x.example", None, 1, pwned(4))];
            for r in [&mut a, &mut b, &mut c] {
                sort_run(r);
            }
            vec![a, b, Vec::new(), c]
        };
        let forward = merge_and_sort(runs());
        let mut reversed = runs();
        reversed.reverse();
        assert_eq!(forward, merge_and_sort(reversed));
        let emails: Vec<&str> = forward.iter().map(|r| r.email.as_str()).collect();
        assert_eq!(
            emails,
            [
                "a@x.example",
                "b@x.example",
                "c@x.example",
                "d@x.example",
                "e@x.example"
            ]
        );
        let a = &forward[0];
        assert_eq!(a.owner.as_deref(), Some("amy"));
        assert_eq!(a.homes.len(), 2);
        assert_eq!(a.findings.len(), 2);
        assert_eq!(a.severity, Severity::High);
    }
}
