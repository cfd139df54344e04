//! Dovecot passwd-files: `user@domain:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields`, `#`
//! comments and blank lines allowed, a hash without `{SCHEME}` is crypt(3). Users without a
//! domain are rejected, and when most are, the shape of the rows names the likely mistake (a
//! DirectAdmin passwd or a cPanel shadow given as a passwd-file).
//!
//! Lines are read exactly as Dovecot 2.3 does (passwd_file_open()/passwd_file_add() in
//! src/auth/db-passwd-file.c): split at every `:`, the password is the second field — a `:`
//! cannot be part of one —; libpam-pwdfile's `password[NN]` suffix names its scheme; a user listed
//! twice keeps its first line. The file is taken to be the userdb too (Dovecot's documented
//! setup), so a UID or GID that is neither empty, a non-zero number, nor a user (group) of this
//! system makes Dovecot refuse the user: such a line is rejected with its line number and the
//! reason, never guessed into a password (it cannot log in; a stray `:` in a password is the
//! usual cause).

use super::{Owner, ReadStats, Sink, Want, emit, map_all};
use crate::email;
use crate::error::Result;
use std::collections::HashSet;
use std::path::Path;

/// Read a Dovecot passwd-file. Users without a domain are rejected (counted): the audit needs the
/// address.
pub fn read_passwd_file(path: &Path, want: &Want, sink: &mut Sink) -> Result<ReadStats> {
    parse_passwd_file(&map_all(path)?, path, want, sink)
}

/// [`read_passwd_file`] on bytes already read (`path` names them in messages).
pub fn parse_passwd_file(
    data: &[u8],
    path: &Path,
    want: &Want,
    sink: &mut Sink,
) -> Result<ReadStats> {
    let mut out = ReadStats::default();
    // Rows without a domain, by the shape of the rest of the line (for the hint).
    let (mut da_like, mut shadow_like, mut no_domain) = (0u64, 0u64, 0u64);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    // Read /etc/passwd and /etc/group only if a UID or GID is given by name.
    let ids = std::cell::OnceCell::new();
    for (i, line) in crate::input::lines(data).enumerate() {
        let line_no = i as u64 + 1;
        let line = if i == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        let line = crate::bytes::trim_blanks(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let f: Vec<&[u8]> = line.split(|&c| c == b':').collect();
        let user = f[0];
        let Some(&hash) = f.get(1) else {
            out.reject(path, line_no, "no password field");
            continue;
        };
        if !user.contains(&b'@') {
            no_domain += 1;
            if f.len() >= 7 && f[5].windows(6).any(|w| w == b"/imap/") {
                da_like += 1;
            } else if f.len() == 9 && f[2].iter().all(u8::is_ascii_digit) {
                shadow_like += 1;
            }
        }
        if let Some(why) = dovecot_refuses(&f, || ids.get_or_init(SystemIds::load)) {
            out.reject(path, line_no, &why);
            continue;
        }
        if !seen.insert(user.to_vec()) {
            out.reject(
                path,
                line_no,
                "Dovecot refuses this line: the user is listed again (only its first line counts)",
            );
            continue;
        }
        let hash = pwdfile_suffix(hash);
        match email::normalize(user) {
            Ok(email) if want(email.domain()) => {
                emit(email, &hash, &Owner::UNKNOWN, &mut out, sink)?;
            }
            Ok(_) => out.skipped += 1,
            Err(why) => out.reject(path, line_no, why),
        }
    }
    if no_domain * 2 > out.rejected.max(1) {
        out.hint = Some(if da_like * 2 > no_domain {
            "the rows have no @domain and look like a DirectAdmin per-domain passwd \
             (user:hash:uid:gid:gecos:/home/OWNER/imap/DOMAIN/user:shell): read the server tree with \
             --directadmin ROOT instead"
                .into()
        } else if shadow_like * 2 > no_domain {
            "the rows have no @domain and look like a cPanel shadow file (login:hash:days::::::): \
             read the server tree with --cpanel ROOT instead"
                .into()
        } else {
            "the users have no @domain: a passwd-file needs full addresses (user@domain:{SCHEME}hash:...)"
                .into()
        });
    }
    Ok(out)
}

/// Why Dovecot would refuse the user of this line, if it would: an invalid UID or GID.
fn dovecot_refuses<'a>(f: &[&[u8]], ids: impl Fn() -> &'a SystemIds) -> Option<String> {
    for (field, what) in [(2, "UID"), (3, "GID")] {
        let Some(v) = f.get(field).filter(|v| !v.is_empty()) else {
            continue;
        };
        let numeric = v.iter().all(u8::is_ascii_digit);
        let valid = if numeric {
            std::str::from_utf8(v)
                .ok()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n != 0 && n != u32::MAX)
        } else {
            let ids = ids();
            let names = if field == 2 { &ids.users } else { &ids.groups };
            names.contains(*v)
        };
        if !valid {
            // The field's text is not shown: it may be the rest of a password.
            return Some(format!(
                "Dovecot refuses this user: field {} ({what}) is {} (a ':' inside the password? a passwd-file cannot hold one: store it hashed, or as {{PLAIN.b64}})",
                field + 1,
                if numeric {
                    "0 or out of range"
                } else {
                    "neither a number nor a name known to this system"
                }
            ));
        }
    }
    None
}

/// libpam-pwdfile's `password[NN]`: 34 is PLAIN-MD5, 56 DIGEST-MD5, anything else crypt(3)
/// (Dovecot's passwd_file_add()).
fn pwdfile_suffix(pass: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let n = pass.len();
    if n > 4 && pass[0] != b'{' && pass[0] != b'$' && pass[n - 1] == b']' && pass[n - 4] == b'[' {
        let num = (i32::from(pass[n - 3]) - 48) * 10 + (i32::from(pass[n - 2]) - 48);
        let scheme: &[u8] = match num {
            34 => b"{PLAIN-MD5}",
            56 => b"{DIGEST-MD5}",
            _ => b"{CRYPT}",
        };
        return [scheme, &pass[..n - 4]].concat().into();
    }
    pass.into()
}

/// User and group names of this system (/etc/passwd, /etc/group), which Dovecot accepts for a
/// UID or GID given by name.
struct SystemIds {
    users: HashSet<Vec<u8>>,
    groups: HashSet<Vec<u8>>,
}

impl SystemIds {
    fn load() -> SystemIds {
        let names = |path: &str| -> HashSet<Vec<u8>> {
            std::fs::read(path)
                .unwrap_or_default()
                .split(|&c| c == b'\n')
                .filter_map(|l| l.split(|&c| c == b':').next())
                .filter(|n| !n.is_empty() && !n.starts_with(b"#"))
                .map(<[u8]>::to_vec)
                .collect()
        };
        SystemIds {
            users: names("/etc/passwd"),
            groups: names("/etc/group"),
        }
    }
}
