//! The decision for a login: what the index says of its password (HIBP and combolist counts,
//! whether it is one leaked for this very address), and what the policy makes of it: `allow` or
//! `refuse`. The plaintext is only compared and hashed here, never kept.

use super::protocol::{self, Reply, Request};
use crate::index::Index;
use serde::Deserialize;

/// What a login with a leaked password meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Record only (the default).
    #[default]
    Observe,
    /// Refuse an SMTP or submission login whose password is a confirmed leak for the address.
    RefuseSmtpConfirmed,
    /// Also refuse an SMTP or submission login whose password is in the dumps more than N times.
    RefuseSmtpPwnedOver(u64),
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Policy, String> {
        let s = s.trim();
        match s {
            "observe" => return Ok(Policy::Observe),
            "refuse-smtp-confirmed" => return Ok(Policy::RefuseSmtpConfirmed),
            _ => {}
        }
        if let Some(n) = s
            .strip_prefix("refuse-smtp-pwned-over")
            .map(|n| n.trim_start_matches([' ', '=', ':']))
        {
            return n
                .parse()
                .map(Policy::RefuseSmtpPwnedOver)
                .map_err(|_| format!("{s:?}: expected refuse-smtp-pwned-over=N with N a count"));
        }
        Err(format!(
            "{s:?}: expected observe, refuse-smtp-confirmed or refuse-smtp-pwned-over=N"
        ))
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Observe => f.write_str("observe"),
            Policy::RefuseSmtpConfirmed => f.write_str("refuse-smtp-confirmed"),
            Policy::RefuseSmtpPwnedOver(n) => write!(f, "refuse-smtp-pwned-over={n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The services a `refuse-smtp-*` policy refuses: what Postfix and Exim send through Dovecot's
/// auth socket, and Dovecot's own submission service.
pub const SMTP_SERVICES: [&str; 2] = ["smtp", "submission"];

/// One login's verdict, as recorded (no password, no hash of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(super) service: String,
    pub(super) hibp: u64,
    pub(super) combolist: u64,
    pub(super) confirmed: bool,
}

/// Answer one request line. The error text never holds the password or any part of the request
/// but the service name.
pub(super) fn judge(
    line: &[u8],
    index: &Index,
    policy: Policy,
    never: &[String],
) -> std::result::Result<Reply, &'static str> {
    let (service, user, password) = match protocol::parse(line)? {
        Request::Ping => {
            return Ok(Reply::Pong(
                index.emails.as_ref().map_or(0, |e| e.addresses()),
            ));
        }
        Request::Login {
            service,
            user,
            password,
        } => (service, user, password),
    };
    let Ok(email) = crate::email::normalize(user) else {
        return Ok(Reply::Skip("user is not an address"));
    };
    let counts = index
        .password_counts(&password)
        .map_err(|_| "the index could not be read")?;
    let confirmed = match &index.emails {
        Some(em) if em.keeps_passwords_of(email.domain()) => em
            .record(&email.addr)
            .map_err(|_| "the index could not be read")?
            .is_some_and(|r| {
                r.secrets.iter().any(|(tag, pw)| {
                    *tag == crate::sources::combolist::Secret::Plain
                        && subtle::ConstantTimeEq::ct_eq(pw.as_slice(), password.as_slice()).into()
                })
            }),
        _ => false,
    };
    drop(password);
    let v = Verdict {
        service,
        hibp: counts.dumps,
        combolist: counts.combolists,
        confirmed,
    };
    let smtp = SMTP_SERVICES.contains(&v.service.as_str());
    let refuse = smtp
        && !never.contains(&email.addr)
        && match policy {
            Policy::Observe => false,
            Policy::RefuseSmtpConfirmed => v.confirmed,
            Policy::RefuseSmtpPwnedOver(n) => v.confirmed || v.hibp > n,
        };
    Ok(Reply::Verdict {
        refuse,
        v,
        address: email.addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_back() {
        for s in [
            "observe",
            "refuse-smtp-confirmed",
            "refuse-smtp-pwned-over=100",
        ] {
            assert_eq!(s.parse::<Policy>().unwrap().to_string(), s);
        }
        assert_eq!(
            "refuse-smtp-pwned-over 5".parse::<Policy>().unwrap(),
            Policy::RefuseSmtpPwnedOver(5)
        );
        assert!("refuse-all".parse::<Policy>().is_err());
        assert!("refuse-smtp-pwned-over=x".parse::<Policy>().is_err());
    }
}
