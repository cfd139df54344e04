//! DirectAdmin: `/etc/virtual/blacklist_smtp_usernames` (or the one of the account's own tree),
//! lines `user@domain:UNIXTIME` (SpamBlocker's exim.conf looks `$authenticated_id` up there with
//! `lsearch`).

use super::Platform;
use super::files::MapFile;

pub(super) struct Directadmin;

impl MapFile for Directadmin {
    fn platform(&self) -> Platform {
        Platform::Directadmin
    }

    fn line(&self, address: &str, since: u64) -> String {
        format!("{address}:{since}")
    }

    fn address_in<'a>(&self, line: &'a str) -> Option<&'a str> {
        line.split(':').next()
    }
}
