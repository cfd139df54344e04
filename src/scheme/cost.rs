//! What one verification of a stored hash would cost, read from the hash's own parameters, and the
//! limits above which it is never run: a hash an attacker (or a typo) set to argon2 m=4 GiB,
//! bcrypt cost 31 or sha512-crypt rounds=999999999 would otherwise exhaust memory or stall the
//! nightly run. Such an account is `unverifiable` with reason "cost over limit".

use super::Check;
use serde::{Deserialize, Serialize};

/// The most a stored hash may ask of one verification (config keys of the same names under
/// `[limits]`; see README "Hash schemes").
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CostLimits {
    /// bcrypt's cost (log2 of its rounds): 14 is about 1 s per verification.
    pub max_bcrypt_cost: u32,
    /// Rounds of the crypt(3) schemes that take a count: sha256/sha512-crypt `rounds=` (default
    /// 5000), Sun MD5 (4096 + `rounds=`), BSDi `_` (its 24-bit count). 1,000,000 sha512-crypt
    /// rounds is about 0.4 s.
    pub max_crypt_rounds: u64,
    /// Iterations of PBKDF2, SCRAM (Dovecot's default 5000 and 4096) and OTP's sequence number.
    pub max_iterations: u64,
    /// Memory of one verification in MiB: argon2's `m=`, scrypt's and yescrypt's 128·r·N.
    pub max_memory_mib: u64,
    /// argon2's passes `t=`.
    pub max_argon2_t: u64,
    /// argon2's lanes `p=`, scrypt's and yescrypt's `p`.
    pub max_parallelism: u64,
}

impl Default for CostLimits {
    fn default() -> Self {
        CostLimits {
            max_bcrypt_cost: 14,
            max_crypt_rounds: 1_000_000,
            max_iterations: 1_000_000,
            max_memory_mib: 256,
            max_argon2_t: 16,
            max_parallelism: 16,
        }
    }
}

/// The cost parameters of a hash, as far as they matter; `None` where one cannot be read (the
/// verification would fail anyway, it is not run).
struct Cost {
    rounds: Option<u64>,
    memory_bytes: Option<u64>,
    passes: Option<u64>,
    lanes: Option<u64>,
}

impl Cost {
    const FREE: Cost = Cost {
        rounds: Some(0),
        memory_bytes: Some(0),
        passes: Some(0),
        lanes: Some(0),
    };
}

impl CostLimits {
    /// May `check` be run? False when any of its parameters is over a limit or unreadable.
    pub fn allows(&self, check: &Check) -> bool {
        let mib = self.max_memory_mib.saturating_mul(1 << 20);
        let (round_limit, c) = match check {
            Check::Crypt(h) if h.starts_with("$2") => (
                u64::from(self.max_bcrypt_cost),
                Cost {
                    rounds: h.get(4..6).and_then(|c| c.parse().ok()),
                    ..Cost::FREE
                },
            ),
            Check::Crypt(h) => (self.max_crypt_rounds, crypt_rounds(h)),
            Check::SunMd5(h) => (self.max_crypt_rounds, sunmd5_rounds(h)),
            Check::Argon2(h) => (0, argon2(h)),
            Check::Yescrypt(h) | Check::GostYescrypt(h) => (0, yescrypt(h)),
            Check::Scrypt(h) => (0, scrypt(h)),
            Check::Pbkdf2 { rounds: n, .. } | Check::Scram { iter: n, .. } => (
                self.max_iterations,
                Cost {
                    rounds: (*n > 0).then_some(u64::from(*n)),
                    ..Cost::FREE
                },
            ),
            Check::Otp { seq, .. } => (
                self.max_iterations,
                Cost {
                    rounds: Some(*seq),
                    ..Cost::FREE
                },
            ),
            _ => (0, Cost::FREE),
        };
        let within = |v: Option<u64>, max: u64| v.is_some_and(|v| v <= max);
        within(c.rounds, round_limit)
            && within(c.memory_bytes, mib)
            && within(c.passes, self.max_argon2_t)
            && within(c.lanes, self.max_parallelism)
    }
}

/// sha-crypt `rounds=` (default 5000), BSDi `_CCCC` (24-bit little-endian count); others none.
fn crypt_rounds(h: &str) -> Cost {
    let rounds = if let Some(r) = h
        .strip_prefix("$5$rounds=")
        .or_else(|| h.strip_prefix("$6$rounds="))
    {
        r.split('$').next().and_then(|r| r.parse().ok())
    } else if let Some(count) = h.strip_prefix('_') {
        count.get(..4).and_then(|c| {
            c.bytes()
                .rev()
                .try_fold(0u64, |n, b| Some(n * 64 + itoa64(b)?))
        })
    } else {
        Some(0)
    };
    Cost {
        rounds,
        ..Cost::FREE
    }
}

fn sunmd5_rounds(h: &str) -> Cost {
    let extra = match h.get(5..).and_then(|r| r.strip_prefix("rounds=")) {
        Some(r) => r.split('$').next().and_then(|r| r.parse::<u64>().ok()),
        None => Some(0),
    };
    Cost {
        rounds: extra.map(|e| e + 4096),
        ..Cost::FREE
    }
}

fn argon2(h: &str) -> Cost {
    let param = |k: &str| {
        h.split('$')
            .flat_map(|part| part.split(','))
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse::<u64>().ok())
    };
    Cost {
        rounds: Some(0),
        memory_bytes: param("m").map(|kib| kib.saturating_mul(1024)),
        passes: param("t"),
        lanes: param("p"),
    }
}

/// `$y$PARAMS$` / `$gy$PARAMS$` (yescrypt's own parameter encoding).
fn yescrypt(h: &str) -> Cost {
    let params = h
        .split('$')
        .nth(2)
        .and_then(|p| p.parse::<yescrypt::Params>().ok());
    match params {
        Some(p) => scrypt_like(Some(p.n()), Some(u64::from(p.r())), Some(u64::from(p.p()))),
        None => scrypt_like(None, None, None),
    }
}

/// `$7$` + N (log2, one character) + r and p (five characters each).
fn scrypt(h: &str) -> Cost {
    let s = h.as_bytes();
    let n_log2 = s.get(3).copied().and_then(itoa64);
    let field = |at: usize| {
        s.get(at..at + 5)?
            .iter()
            .rev()
            .try_fold(0u64, |n, &b| Some(n * 64 + itoa64(b)?))
    };
    scrypt_like(
        n_log2.filter(|&l| (1..64).contains(&l)).map(|l| 1u64 << l),
        field(4),
        field(9),
    )
}

fn scrypt_like(n: Option<u64>, r: Option<u64>, p: Option<u64>) -> Cost {
    Cost {
        rounds: Some(0),
        memory_bytes: n
            .zip(r)
            .and_then(|(n, r)| n.checked_mul(r)?.checked_mul(128)),
        passes: Some(0),
        lanes: p,
    }
}

/// The crypt(3) alphabet: `./0-9A-Za-z`, six bits per character.
pub(crate) const ITOA64: &[u8] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The value of a character of [`ITOA64`].
pub(crate) fn itoa64(c: u8) -> Option<u64> {
    Some(match c {
        b'.' => 0,
        b'/' => 1,
        b'0'..=b'9' => u64::from(c - b'0') + 2,
        b'A'..=b'Z' => u64::from(c - b'A') + 12,
        b'a'..=b'z' => u64::from(c - b'a') + 38,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_parameters_are_over_the_default_limits() {
        let l = CostLimits::default();
        let crypt = |h: &str| Check::Crypt(h.into());
        assert!(l.allows(&crypt("$2y$10$abcdefghijklmnopqrstuv")));
        assert!(!l.allows(&crypt("$2y$31$abcdefghijklmnopqrstuv")));
        assert!(l.allows(&crypt("$6$rounds=5000$salt$x")));
        assert!(!l.allows(&crypt("$6$rounds=999999999$salt$x")));
        assert!(l.allows(&crypt("_J9..abcd")), "BSDi count 725");
        assert!(!l.allows(&crypt("_zzzzabcd")), "BSDi count 2^24-1");
        assert!(l.allows(&Check::SunMd5("$md5,rounds=45883$6kWqLKiX$$x".into())));
        assert!(!l.allows(&Check::SunMd5("$md5,rounds=4000000000$a$$x".into())));
        assert!(l.allows(&Check::Argon2("$argon2id$v=19$m=65536,t=3,p=1$s$h".into())));
        assert!(!l.allows(&Check::Argon2(
            "$argon2id$v=19$m=4194304,t=3,p=1$s$h".into()
        )));
        assert!(!l.allows(&Check::Argon2("$argon2id$v=19$t=3,p=1$s$h".into())));
        // mkpasswd -m scrypt: N=2^14, r=32, p=1: 64 MiB.
        assert!(l.allows(&Check::Scrypt("$7$CU..../....salt$h".into())));
        // N=2^30.
        assert!(!l.allows(&Check::Scrypt("$7$WU..../....salt$h".into())));
        assert!(l.allows(&Check::Yescrypt("$y$j9T$salt$h".into())));
        assert!(
            !l.allows(&Check::Yescrypt("$y$jJT$salt$h".into())),
            "N=2^30"
        );
        let small = CostLimits {
            max_memory_mib: 32,
            ..CostLimits::default()
        };
        assert!(!small.allows(&Check::Scrypt("$7$CU..../....salt$h".into())));
    }
}
