//! `domain`: every breached address at one or more domains, from the email map. Each domain is a
//! range scan of its own keys (see [`crate::index::emails`]), so one domain answers in
//! milliseconds whatever the size of the index.

use crate::error::{Error, Result};
use crate::index::Index;
use crate::report::Row;
use serde::Serialize;

/// One breached address. Field names are a contract with scripts.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DomainRecord {
    pub domain: String,
    pub email: String,
    pub count: u64,
}

impl Row for DomainRecord {
    fn csv_header() -> &'static [&'static str] {
        &["domain", "email", "count"]
    }
    fn csv_fields(&self) -> Vec<String> {
        vec![
            self.domain.clone(),
            self.email.clone(),
            self.count.to_string(),
        ]
    }
}

/// Every address at `domains` (normalised; with `subdomains`, also below them), sorted by domain
/// then address, each once.
pub fn query(index: &Index, domains: &[String], subdomains: bool) -> Result<Vec<DomainRecord>> {
    let Some(em) = &index.emails else {
        return Err(Error::index(
            &index.dir,
            "holds no combolists: build it with --combolist to query domains",
        ));
    };
    let mut out = Vec::new();
    for d in domains {
        for (email, count) in em.domain(d, subdomains)? {
            let domain = email
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            out.push(DomainRecord {
                domain,
                email,
                count,
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
