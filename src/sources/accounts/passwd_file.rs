//! Dovecot passwd-files: `user@domain:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields`, `#`
//! comments and blank lines allowed, a hash without `{SCHEME}` is crypt(3). Users without a
//! domain are rejected, and when most are, the shape of the rows names the likely mistake (a
//! DirectAdmin passwd or a cPanel shadow given as a passwd-file).

use super::{Owner, ReadStats, Sink, Want, emit, read_all};
use crate::email;
use crate::error::Result;
use std::path::Path;

/// Read a Dovecot passwd-file. Users without a domain are rejected (counted): the audit needs the
/// address.
pub fn read_passwd_file(path: &Path, want: &Want, sink: &mut Sink) -> Result<ReadStats> {
    parse_passwd_file(&read_all(path)?, path, want, sink)
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
        let mut fields = line.splitn(3, |&c| c == b':');
        let user = fields.next().unwrap_or_default();
        let Some(hash) = fields.next() else {
            out.reject(path, line_no, "no password field");
            continue;
        };
        if !user.contains(&b'@') {
            no_domain += 1;
            let f: Vec<&[u8]> = line.split(|&c| c == b':').collect();
            if f.len() >= 7 && f[5].windows(6).any(|w| w == b"/imap/") {
                da_like += 1;
            } else if f.len() == 9 && f[2].iter().all(u8::is_ascii_digit) {
                shadow_like += 1;
            }
        }
        match email::normalize(user) {
            Ok(email) if want(email.domain()) => {
                emit(email, hash, &Owner::UNKNOWN, &mut out, sink)?;
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
