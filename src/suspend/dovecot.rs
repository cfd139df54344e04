//! Dovecot: a `deny = yes` passwd-file passdb, one address per line (refuses SMTP AUTH).

use super::Platform;
use super::files::MapFile;

pub(super) struct Dovecot;

impl MapFile for Dovecot {
    fn platform(&self) -> Platform {
        Platform::Dovecot
    }

    fn line(&self, address: &str, _since: u64) -> String {
        address.to_string()
    }

    fn address_in<'a>(&self, line: &'a str) -> Option<&'a str> {
        line.split(':').next()
    }
}
