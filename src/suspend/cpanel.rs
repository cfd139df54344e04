//! cPanel: `uapi --user=OWNER Email suspend_outgoing email=ADDRESS` (undo `unsuspend_outgoing`),
//! success being `result.status: 1` in its JSON. A call is recorded after it succeeded (calling
//! it twice is harmless).

use super::{Active, Backend, Cx, PlaceOutcome, Target};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub(super) struct Cpanel;

impl Backend for Cpanel {
    fn entry(&self, t: &Target, _since: u64) -> String {
        format!(
            "uapi --user={} Email suspend_outgoing email={}",
            t.owner.as_deref().unwrap_or("OWNER?"),
            t.address
        )
    }

    /// cPanel: one `uapi` call per account, as its cPanel user; success is `result.status: 1`. A
    /// failed call is reported and retried on the next run; the other accounts go on. A release
    /// calls `unsuspend_outgoing` only while the account still lives on a cPanel server (an account
    /// removed or moved away took its suspension with it).
    fn sync(
        &self,
        cx: &mut Cx<'_>,
        wanted: &[Target],
        active: &[Active],
        out: &mut PlaceOutcome,
    ) -> Result<()> {
        let uapi = match &cx.cfg.uapi {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from("/usr/local/cpanel/bin/uapi"),
        };
        if cx.apply && !uapi.exists() {
            return Err(Error::bad_input(
                &uapi,
                "uapi not found (set `uapi` in [suspend]); nothing changed on cPanel",
            ));
        }
        let place = out.place.clone();
        let active_addresses: HashSet<&str> = active.iter().map(|a| a.address.as_str()).collect();
        let wanted_here: HashSet<&str> = wanted.iter().map(|t| t.address.as_str()).collect();
        for t in wanted {
            if active_addresses.contains(t.address.as_str()) {
                continue;
            }
            let Some(owner) = &t.owner else { continue };
            let shown = self.entry(t, 0);
            if cx.apply {
                if let Err(why) = call_uapi(&uapi, owner, "suspend_outgoing", &t.address) {
                    out.failed
                        .push((t.address.clone(), format!("`{shown}` failed: {why}")));
                    continue;
                }
                cx.record_applied(&place, &[(t.address.clone(), owner.clone())])?;
            }
            out.suspended.push((t.address.clone(), shown));
        }
        if !cx.release {
            return Ok(());
        }
        for a in active {
            if wanted_here.contains(a.address.as_str()) {
                continue;
            }
            let why = cx.release_reason(&a.address)?;
            let lives_here = cx
                .state
                .homes_of(&a.address)?
                .iter()
                .any(|h| h.kind == "cpanel");
            let owner = &a.entry;
            let shown = if lives_here {
                format!(
                    "uapi --user={owner} Email unsuspend_outgoing email={}",
                    a.address
                )
            } else {
                "no call: the account is no longer on the cPanel server".to_string()
            };
            if cx.apply {
                if lives_here
                    && let Err(e) = call_uapi(&uapi, owner, "unsuspend_outgoing", &a.address)
                {
                    out.failed
                        .push((a.address.clone(), format!("`{shown}` failed: {e}")));
                    continue;
                }
                cx.state.record_release(a.id, &why)?;
            }
            out.released
                .push((a.address.clone(), format!("{shown} ({why})")));
        }
        Ok(())
    }
}

/// Run `uapi --user=OWNER --output=json Email CALL email=ADDRESS`; `Err` with what it said.
fn call_uapi(
    uapi: &Path,
    owner: &str,
    call: &str,
    address: &str,
) -> std::result::Result<(), String> {
    let o = std::process::Command::new(uapi)
        .arg(format!("--user={owner}"))
        .args(["--output=json", "Email", call])
        .arg(format!("email={address}"))
        .output()
        .map_err(|e| format!("{}: {e}", uapi.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    if json["result"]["status"] == 1 {
        return Ok(());
    }
    let errors = match &json["result"]["errors"] {
        serde_json::Value::Array(v) => v
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "),
        serde_json::Value::Null => "no JSON answer".to_string(),
        other => other.to_string(),
    };
    if o.status.success() {
        Err(format!(
            "cPanel answered status {}: {errors}",
            json["result"]["status"]
        ))
    } else {
        Err(format!("{}: {errors}", o.status))
    }
}
