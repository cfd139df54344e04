//! The plan: which accounts are suspended, at which places (the platform and file of each
//! source an account lives in), and the text `audit --out` writes of it.

use super::{Place, Platform, SuspendConfig, Target, unix_now};
use crate::error::Result;
use crate::state::{HomeRow, State};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What should be suspended where: each account whose current password is leaked, at the
/// places of the sources it lives in, and the accounts that cannot be (why, in words).
#[derive(Debug, Default)]
pub struct Plan {
    pub places: BTreeMap<Place, Vec<Target>>,
    /// (address, why it is not suspended anywhere or somewhere).
    pub not_suspended: Vec<(String, String)>,
}

/// The target of cPanel's place.
const UAPI: &str = "uapi";

/// The places that suspend an account living in `home`, or why there is none: a DirectAdmin
/// account in its own tree's blacklist (`ROOT/etc/virtual/blacklist_smtp_usernames`, or
/// `directadmin_file`), a cPanel account through `uapi` as its cPanel user, an account of a
/// passwd-file, CSV, SQL or LDAP store in the Postfix and Dovecot maps the config names.
fn places_of(
    home: &HomeRow,
    cfg: &SuspendConfig,
    over: &Override,
) -> std::result::Result<Vec<Place>, String> {
    let on = |p: Platform| cfg.platforms.contains(&p);
    let file = |p: Platform, default: PathBuf| -> String {
        let f = match over {
            Some((q, f)) if *q == p => f.to_path_buf(),
            _ => cfg.file_set(p).unwrap_or(default),
        };
        absolute(&f).display().to_string()
    };
    let none = || {
        format!(
            "no suspension configured for --{} {}",
            home.kind, home.location
        )
    };
    match home.kind.as_str() {
        "directadmin" => {
            if !on(Platform::Directadmin) {
                return Err(none());
            }
            let default = Path::new(&home.location).join("etc/virtual/blacklist_smtp_usernames");
            Ok(vec![Place {
                platform: Platform::Directadmin,
                target: file(Platform::Directadmin, default),
            }])
        }
        "cpanel" => {
            if !on(Platform::Cpanel) {
                return Err(none());
            }
            if home.owner.is_none() {
                return Err(format!("no cPanel user known for it in {}", home.location));
            }
            Ok(vec![Place {
                platform: Platform::Cpanel,
                target: UAPI.into(),
            }])
        }
        _ => {
            let maps: Vec<Place> = [Platform::Postfix, Platform::Dovecot]
                .into_iter()
                .filter(|&p| on(p))
                .map(|p| Place {
                    platform: p,
                    target: file(p, PathBuf::from(p.default_file().unwrap_or_default())),
                })
                .collect();
            if maps.is_empty() {
                Err(none())
            } else {
                Ok(maps)
            }
        }
    }
}

/// A file as the state names it: absolute, so the same file has one name whatever the working
/// directory of the run that wrote it.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `--file` for one platform.
type Override<'a> = Option<(Platform, &'a Path)>;

/// The accounts that should be suspended now (unresolved `critical` findings, and `high` ones
/// with `include_high`, less `never_suspend`), each at the places of the sources it lives in.
pub fn plan(state: &State, cfg: &SuspendConfig, over: Override) -> Result<Plan> {
    let never: Vec<String> = cfg.never_suspend.iter().map(|a| a.to_lowercase()).collect();
    // Accounts that live on this server (or whose home was never recorded); in a fleet, one
    // living on another server is suspended by that server's run, on its platform.
    let addresses = state.suspension_candidates(cfg.include_high)?;
    let mut plan = Plan::default();
    for address in addresses {
        if never.contains(&address) {
            continue;
        }
        let homes = state.homes_of(&address)?;
        if homes.is_empty() {
            plan.not_suspended.push((
                address.clone(),
                "where it lives is not recorded yet (the next audit records it)".into(),
            ));
        }
        for h in &homes {
            match places_of(h, cfg, &over) {
                Ok(places) => {
                    for p in places {
                        plan.places.entry(p).or_default().push(Target {
                            address: address.clone(),
                            owner: h.owner.clone(),
                        });
                    }
                }
                Err(why) => plan.not_suspended.push((address.clone(), why)),
            }
        }
    }
    for v in plan.places.values_mut() {
        v.sort();
        v.dedup_by(|a, b| a.address == b.address);
    }
    Ok(plan)
}

/// What each platform needs for the plan, as `--out/suspend/PLATFORM.txt` holds it: for each
/// place of the platform a `# FILE` line and the file's lines (cPanel: the commands), then the
/// accounts that cannot be suspended, as `# not suspended:` comments.
pub fn plan_text(platform: Platform, plan: &Plan) -> String {
    let since = unix_now();
    let mut s = String::new();
    for (place, targets) in plan.places.iter().filter(|(p, _)| p.platform == platform) {
        s.push_str(&format!("# {}\n", place.target));
        for t in targets {
            let line = platform.backend().entry(t, since);
            s.push_str(&line);
            s.push('\n');
        }
    }
    for (a, why) in &plan.not_suspended {
        s.push_str(&format!("# not suspended: {a}: {why}\n"));
    }
    s
}
