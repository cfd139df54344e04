//! Made-up history for the page's demonstrations and tests.

use crate::error::Result;
use crate::state::State;

/// Record `nights` made-up past runs in `state`, one a day ending yesterday, for demonstrations
/// and tests of the page (`gendata runs`, `scripts/sample-page.sh`): at-risk counts by severity
/// about the size of the bundled sample data, drifting night to night; an index rebuild every
/// seventh night; one incomplete night with a domain not audited.
pub fn sample_history(state: &mut State, nights: u64, seed: u64) -> Result<()> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // SplitMix64.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let today = std::time::SystemTime::now();
    // About the bundled sample-data's size (a dozen accounts), so tonight's real run fits in.
    let (mut critical, mut high, mut medium, mut unknown) = (3i64, 3i64, 4i64, 1i64);
    for n in (1..=nights).rev() {
        let started = today - std::time::Duration::from_secs(n * 86_400);
        let mut drift = |v: &mut i64, by: i64| {
            *v = (*v + (next() % (2 * by as u64 + 1)) as i64 - by).max(0);
        };
        drift(&mut critical, 1);
        drift(&mut high, 1);
        drift(&mut medium, 1);
        drift(&mut unknown, 1);
        let incomplete = n == nights / 3;
        let not_audited = if incomplete {
            r#"[{"domain":"shop.example","path":"servers/directadmin/data/users/shop/domains/shop.example","reason":"passwd file missing"}]"#
        } else {
            "[]"
        };
        let run = crate::state::RunRow {
            started: humantime::format_rfc3339_seconds(started).to_string(),
            complete: !incomplete,
            accounts: 10 + (next() % 3),
            at_risk: (critical + high + medium + unknown) as u64,
            critical: critical as u64,
            high: high as u64,
            medium: medium as u64,
            unknown: unknown as u64,
            new_findings: next() % 3,
            held_addresses: if incomplete { 2 } else { 0 },
            not_audited: not_audited.into(),
            sources: r#"[{"kind":"--directadmin","path":"servers/directadmin","rows":7,"accounts":7,"rejected":0}]"#.into(),
            index_rebuilt: n % 7 == 0,
            ..Default::default()
        };
        state.record_night(&Default::default(), &run)?;
    }
    Ok(())
}
