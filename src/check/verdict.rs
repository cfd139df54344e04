//! Verdicts on one account: its findings and their severities, judged against the index.
//!
//! Severity, worst first:
//! - `critical`: the account's current password is among those leaked for its address
//!   (`current_password_leaked`, verified against the stored hash);
//! - `high`: the account's password is public (`password_pwned`: in the dumps, or else in
//!   combolists, the count saying which);
//! - `medium`: the address is in a combolist (`credentials_leaked`), the password not known to be
//!   leaked;
//! - `unknown`: the stored hash cannot be checked at all (`unverifiable`): not known to be safe.

use super::CheckSummary;
use crate::error::Result;
use crate::index::keys::{self, HashKind, Origin};
use crate::index::{Index, PasswordCounts};
use crate::scheme::{Reason, Stored};
use crate::sources::accounts::Account;
use crate::sources::combolist::Secret;
use crate::verify::cache::{Outcome, Verifier};
use serde::Serialize;
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = ();

    /// A severity's [`Severity::name`] back.
    fn from_str(s: &str) -> std::result::Result<Severity, ()> {
        [
            Severity::Unknown,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.name() == s)
        .ok_or(())
    }
}

/// One reason an account is at risk. Field names are a contract with the notice mailer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A password leaked for this address is the account's current password. `seen` is
    /// `"login"` when a login showed it (`serve`), absent when the stored hash did.
    CurrentPasswordLeaked {
        #[serde(skip_serializing_if = "Option::is_none")]
        seen: Option<Seen>,
    },
    /// The account's password is public: in the HIBP dumps `count` times (`source` "hibp"), or,
    /// when the dumps do not have it, in `count` distinct combolist rows (`source` "combolist").
    /// `seen` as for `current_password_leaked`.
    PasswordPwned {
        count: u64,
        source: CountSource,
        #[serde(skip_serializing_if = "Option::is_none")]
        seen: Option<Seen>,
    },
    /// The address is in combolists, in `count` distinct rows.
    CredentialsLeaked { count: u64 },
    /// The stored hash cannot be checked; `reason` says why (unknown scheme, malformed, cost
    /// over limit, needs data we do not have).
    Unverifiable { scheme: String, reason: String },
}

/// How a finding's password was known when not from the stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Seen {
    /// At a login, by `serve` (the stored hash is salted: the dumps cannot be compared with it).
    Login,
}

/// Where the count of a `password_pwned` finding comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum CountSource {
    /// HIBP's "seen N times".
    Hibp,
    /// Distinct combolist rows (address, password) holding the password.
    Combolist,
}

impl Finding {
    fn is_not_kept(&self) -> bool {
        matches!(self, Finding::Unverifiable { reason, .. } if reason == Reason::NotKept.name())
    }

    /// The `password_pwned` finding of a password with these counts: the dumps' count when they
    /// have it, else the combolists'; none when neither has it.
    pub fn pwned(c: PasswordCounts) -> Option<Finding> {
        if c.dumps > 0 {
            Some(Finding::PasswordPwned {
                count: c.dumps,
                source: CountSource::Hibp,
                seen: None,
            })
        } else if c.combolists > 0 {
            Some(Finding::PasswordPwned {
                count: c.combolists,
                source: CountSource::Combolist,
                seen: None,
            })
        } else {
            None
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Finding::CurrentPasswordLeaked { .. } => Severity::Critical,
            Finding::PasswordPwned { .. } => Severity::High,
            Finding::CredentialsLeaked { .. } => Severity::Medium,
            Finding::Unverifiable { .. } => Severity::Unknown,
        }
    }
    /// `kind:value` for CSV output.
    pub fn short(&self) -> String {
        match self {
            Finding::CurrentPasswordLeaked { seen: None } => "current_password_leaked".to_string(),
            Finding::CurrentPasswordLeaked { seen: Some(_) } => {
                "current_password_leaked:login".to_string()
            }
            Finding::PasswordPwned {
                count,
                source: CountSource::Hibp,
                seen,
            } => format!("password_pwned:{count}{}", login_tag(seen)),
            Finding::PasswordPwned {
                count,
                source: CountSource::Combolist,
                seen,
            } => format!("password_pwned:{count}:combolist{}", login_tag(seen)),
            Finding::CredentialsLeaked { count } => format!("credentials_leaked:{count}"),
            Finding::Unverifiable { scheme, .. } => format!("unverifiable:{scheme}"),
        }
    }
}

fn login_tag(seen: &Option<Seen>) -> &'static str {
    match seen {
        Some(Seen::Login) => ":login",
        None => "",
    }
}

/// What logins showed (`serve`'s verdicts in the state), for the accounts whose stored hash
/// cannot be compared with the dumps.
#[derive(Debug, Default)]
pub struct Logins {
    /// Address -> its latest login verdict.
    pub seen: std::collections::HashMap<String, LoginSeen>,
    /// Address -> (digest of its stored hash, since when a verdict counts) as of the last audit.
    pub marks: std::collections::HashMap<String, (String, String)>,
    /// The key of the digests (the state's own: a digest says nothing outside it).
    pub key: Vec<u8>,
    /// Mark stored hashes and apply verdicts (the audit; `check` alone does not).
    pub enabled: bool,
    /// Verdicts at or after this time are "recent" (judged by login in the last 30 days).
    pub recent_since: String,
    /// Now, as stored.
    pub now: String,
}

/// One account's latest login verdict.
#[derive(Clone, Debug, Default)]
pub struct LoginSeen {
    pub seen_at: String,
    pub hibp: u64,
    pub combolist: u64,
    pub confirmed: bool,
}

impl Logins {
    /// The keyed digest of a stored hash (never of a plaintext: only salted and unverifiable
    /// hashes are marked).
    fn digest(&self, stored: &Stored) -> String {
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes any key");
        m.update(format!("{stored:?}").as_bytes());
        hex::encode(&m.finalize().into_bytes()[..12])
    }

    /// The latest verdict of `addr` if it shows the current password: none when the stored hash
    /// (digesting to `digest`) changed after that login.
    fn valid(&self, addr: &str, digest: &str) -> Option<&LoginSeen> {
        let seen = self.seen.get(addr)?;
        let since = match self.marks.get(addr) {
            Some((d, since)) if d == digest => since.as_str(),
            // Changed since the last audit: only a login after now shows the new password.
            Some(_) => self.now.as_str(),
            // First seen: nothing says the hash changed after the login.
            None => "",
        };
        (seen.seen_at.as_str() >= since).then_some(seen)
    }

    /// The findings a login verdict adds for `addr`, whose stored hash digests to `digest`;
    /// none when the hash changed after the login (the password is not the one seen).
    fn findings(&self, addr: &str, digest: &str) -> Vec<Finding> {
        let Some(seen) = self.valid(addr, digest) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        if seen.confirmed {
            v.push(Finding::CurrentPasswordLeaked {
                seen: Some(Seen::Login),
            });
        }
        if seen.hibp > 0 {
            v.push(Finding::PasswordPwned {
                count: seen.hibp,
                source: CountSource::Hibp,
                seen: Some(Seen::Login),
            });
        } else if seen.combolist > 0 {
            v.push(Finding::PasswordPwned {
                count: seen.combolist,
                source: CountSource::Combolist,
                seen: Some(Seen::Login),
            });
        }
        v
    }
}

/// One account at risk. Field names and order are a contract with the notice mailer.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    pub email: String,
    pub domain: String,
    pub owner: Option<String>,
    pub contact: Option<String>,
    /// The server has locked this login (it is audited all the same).
    pub suspended: bool,
    pub severity: Severity,
    pub findings: Vec<Finding>,
    /// Where the account lives: each source (index into the sources checked) that holds it,
    /// with its owner there. Not part of the output contract.
    #[serde(skip)]
    pub homes: Vec<Home>,
}

/// One source an account was read from, and its owner on that platform (cPanel's user).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Home {
    pub source: usize,
    pub owner: Option<String>,
}

/// Judge accounts one after another: the tally, and a record for each account at risk.
pub(super) fn judge_many(
    index: &Index,
    verifier: &Verifier,
    track: &HashSet<String>,
    logins: &Logins,
    source: usize,
    accounts: Vec<Account>,
) -> Result<(Tally, Vec<Record>)> {
    // The stored SHA-1 and NTLM hashes are looked up first, together: their lookups overlap.
    // The dumps' maps come first ([`crate::index::all_maps`]); a hash the dumps count needs no
    // combolist count ([`Finding::pwned`] takes the dumps' when there is one), so it is not
    // looked up there (with many accounts at risk, that is many lookups).
    let mut known: Vec<Option<PasswordCounts>> = vec![None; accounts.len()];
    for (origin, kind) in crate::index::all_maps() {
        let (who, fps): (Vec<usize>, Vec<u64>) = accounts
            .iter()
            .enumerate()
            .filter(|(i, _)| origin == Origin::Dumps || known[*i].is_none_or(|k| k.dumps == 0))
            .filter_map(|(i, a)| match (&a.stored, kind) {
                (Stored::Sha1(d), HashKind::Sha1) => Some((i, keys::fingerprint(d))),
                (Stored::Ntlm(d), HashKind::Ntlm) => Some((i, keys::fingerprint(d))),
                _ => None,
            })
            .unzip();
        if fps.is_empty() {
            continue;
        }
        let counts = index
            .count_many(origin, kind, &fps)?
            .unwrap_or_else(|| vec![0; fps.len()]);
        for (i, c) in who.into_iter().zip(counts) {
            let k = known[i].get_or_insert_default();
            match origin {
                Origin::Dumps => k.dumps = c,
                Origin::Combolists => k.combolists = c,
            }
        }
    }
    let mut t = Tally::default();
    let mut records = Vec::new();
    for (a, known) in accounts.into_iter().zip(known) {
        let (mut findings, kind, deferred) = judge(index, verifier, &a, known)?;
        let mut seen = logins.seen.get(&a.email.addr);
        if logins.enabled && !matches!(kind, Kind::Compared) {
            // The dumps could not be compared with this hash: what a login showed counts.
            let digest = logins.digest(&a.stored);
            seen = logins.valid(&a.email.addr, &digest);
            for f in logins.findings(&a.email.addr, &digest) {
                let same = |g: &Finding| std::mem::discriminant(g) == std::mem::discriminant(&f);
                if !findings.iter().any(same) {
                    findings.push(f);
                }
            }
            t.marks.push((a.email.addr.clone(), digest));
        }
        // Judged at a login: recently, with the password it has now.
        if seen.is_some_and(|s| s.seen_at >= logins.recent_since) {
            t.login_judged.push(source);
        }
        t.add(kind);
        if findings.iter().any(Finding::is_not_kept) {
            t.summary.not_kept += 1;
        }
        if deferred {
            t.deferred.insert(a.email.addr.clone());
        } else if !track.is_empty() && track.contains(&a.email.addr) {
            t.audited
                .entry(a.email.addr.clone())
                .or_default()
                .push(Home {
                    source,
                    owner: a.owner.clone(),
                });
        }
        if !findings.is_empty() {
            // The account is not needed after this: its strings move into the record.
            let home = Home {
                source,
                owner: a.owner.clone(),
            };
            records.push(Record {
                domain: a.email.domain().to_string(),
                email: a.email.addr,
                owner: a.owner,
                contact: a.contact,
                suspended: a.suspended,
                severity: Severity::Unknown,
                findings,
                homes: vec![home],
            });
        }
    }
    Ok((t, records))
}

/// What the judge counted.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) summary: CheckSummary,
    pub(super) missing_map: [u64; 2],
    pub(super) audited: std::collections::HashMap<String, Vec<Home>>,
    /// Accounts whose verification the time budget deferred: judged in part, not audited.
    pub(super) deferred: HashSet<String>,
    /// (address, digest of its stored hash) of the accounts the dumps cannot judge.
    pub(super) marks: Vec<(String, String)>,
    /// The source of each account judged by a login in the last 30 days.
    pub(super) login_judged: Vec<usize>,
}

impl Tally {
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Compared => self.summary.compared += 1,
            Kind::Salted => self.summary.salted += 1,
            Kind::Unverifiable => self.summary.unverifiable += 1,
            Kind::NoMap(k) => {
                self.summary.unverifiable += 1;
                self.missing_map[k.index()] += 1;
            }
        }
    }

    pub(super) fn merge(&mut self, o: Tally) {
        self.summary.compared += o.summary.compared;
        self.summary.salted += o.summary.salted;
        self.summary.unverifiable += o.summary.unverifiable;
        self.summary.not_kept += o.summary.not_kept;
        for i in 0..2 {
            self.missing_map[i] += o.missing_map[i];
        }
        for (a, homes) in o.audited {
            self.audited.entry(a).or_default().extend(homes);
        }
        self.deferred.extend(o.deferred);
        self.marks.extend(o.marks);
        self.login_judged.extend(o.login_judged);
    }
}

enum Kind {
    Compared,
    Salted,
    Unverifiable,
    NoMap(HashKind),
}

/// Judge one account; `known` is the counts of its stored hash when already looked up. The flag
/// is set when a verification was deferred by the time budget (the findings are then partial).
fn judge(
    index: &Index,
    verifier: &Verifier,
    a: &Account,
    known: Option<PasswordCounts>,
) -> Result<(Vec<Finding>, Kind, bool)> {
    let admitted = verifier.admit(&a.stored);
    let stored = admitted.as_ref().unwrap_or(&a.stored);
    let (mut findings, kind) = judge_hash(index, stored, known)?;
    let Some(em) = &index.emails else {
        return Ok((findings, kind, false));
    };
    if let Stored::Unverifiable { .. } = stored {
        if let Some(count) = em.count(&a.email.addr)? {
            findings.push(Finding::CredentialsLeaked { count });
        }
        return Ok((findings, kind, false));
    }
    let Some(rec) = em.record(&a.email.addr)? else {
        return Ok((findings, kind, false));
    };
    findings.push(Finding::CredentialsLeaked { count: rec.count });
    if !em.keeps_passwords_of(a.email.domain()) {
        // Unknown is not safe: say that the comparison could not be made.
        findings.push(Finding::Unverifiable {
            scheme: stored.scheme_name(),
            reason: Reason::NotKept.name().to_string(),
        });
        return Ok((findings, kind, false));
    }
    // Is a password leaked for this address the current one? (What spammers exploit.)
    for (tag, pw) in &rec.secrets {
        if *tag != Secret::Plain {
            continue;
        }
        match verifier.verify(stored, &a.email.addr, pw) {
            Outcome::Match => {
                findings.push(Finding::CurrentPasswordLeaked { seen: None });
                // The password is known now: its public counts come from its SHA-1, so a stored
                // hash the index had no map for (NTLM without an NTLM map) was judged after all.
                let needs_data = Reason::NeedsData.name();
                findings.retain(
                    |f| !matches!(f, Finding::Unverifiable { reason, .. } if reason == needs_data),
                );
                let kind = match kind {
                    Kind::NoMap(_) => Kind::Compared,
                    k => k,
                };
                if !findings
                    .iter()
                    .any(|f| matches!(f, Finding::PasswordPwned { .. }))
                {
                    findings.extend(Finding::pwned(index.password_counts(pw)?));
                }
                return Ok((findings, kind, false));
            }
            Outcome::Deferred => {
                if let Stored::Salted { scheme, .. } = stored {
                    findings.push(Finding::Unverifiable {
                        scheme: scheme.clone(),
                        reason: Reason::Deferred.name().to_string(),
                    });
                }
                return Ok((findings, kind, true));
            }
            Outcome::NoMatch | Outcome::Cannot => {}
        }
    }
    Ok((findings, kind, false))
}

/// What the stored hash alone says.
fn judge_hash(
    index: &Index,
    stored: &Stored,
    known: Option<PasswordCounts>,
) -> Result<(Vec<Finding>, Kind)> {
    let pwned = |c: PasswordCounts| Finding::pwned(c).into_iter().collect::<Vec<_>>();
    let by_map = |kind: HashKind, digest: &[u8], scheme: &str| -> Result<_> {
        Ok(if !index.has_kind(kind) {
            (
                vec![Finding::Unverifiable {
                    scheme: scheme.to_string(),
                    reason: Reason::NeedsData.name().to_string(),
                }],
                Kind::NoMap(kind),
            )
        } else {
            let counts = match known {
                Some(c) => c,
                None => PasswordCounts {
                    dumps: index.count_in(Origin::Dumps, kind, digest)?,
                    combolists: index.count_in(Origin::Combolists, kind, digest)?,
                },
            };
            (pwned(counts), Kind::Compared)
        })
    };
    Ok(match stored {
        Stored::Sha1(d) => by_map(HashKind::Sha1, d, "SHA1")?,
        Stored::Ntlm(d) => by_map(HashKind::Ntlm, d, "NTLM")?,
        Stored::Plain(p) => (pwned(index.password_counts(p)?), Kind::Compared),
        Stored::Salted { .. } => (Vec::new(), Kind::Salted),
        Stored::Unverifiable { scheme, reason } => (
            vec![Finding::Unverifiable {
                scheme: scheme.clone(),
                reason: reason.name().to_string(),
            }],
            Kind::Unverifiable,
        ),
    })
}
