//! DirectAdmin: `/etc/virtual/blacklist_smtp_usernames` (or the one of the account's own tree),
//! lines `user@domain:UNIXTIME` (SpamBlocker's exim.conf looks `$authenticated_id` up there with
//! `lsearch`).

use super::files::{self, MapFile};
use super::{Active, Backend, Cx, PlaceOutcome, Platform, Target};
use crate::error::Result;

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

impl Backend for Directadmin {
    fn entry(&self, t: &Target, since: u64) -> String {
        self.line(&t.address, since)
    }

    fn sync(
        &self,
        cx: &mut Cx<'_>,
        wanted: &[Target],
        active: &[Active],
        out: &mut PlaceOutcome,
    ) -> Result<()> {
        files::merge(self, cx, wanted, active, out)
    }
}
