//! Dovecot: a `deny = yes` passwd-file passdb, one address per line (refuses SMTP AUTH).

use super::files::{self, MapFile};
use super::{Active, Backend, Cx, PlaceOutcome, Platform, Target};
use crate::error::Result;

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

impl Backend for Dovecot {
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
