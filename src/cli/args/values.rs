//! Values given as text on the command line or as text or numbers in the config: sizes, memory,
//! percentages, durations and prefix spans, with their parsers.

/// A value given as text on the command line and as text or a number in the config file, read
/// by one parser either way.
macro_rules! parsed {
    ($(#[$m:meta])* $name:ident($ty:ty) = $parse:expr, $show:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub(crate) struct $name(pub(crate) $ty);

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<$name, String> {
                ($parse)(s).map($name)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                #[derive(serde::Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Text(String),
                    Int(i64),
                    Float(f64),
                }
                let text = match Raw::deserialize(d)? {
                    Raw::Text(s) => s,
                    Raw::Int(i) => i.to_string(),
                    // `{:?}` keeps the decimal point (`1.0`, a share, not `1`, a percentage).
                    Raw::Float(f) => format!("{f:?}"),
                };
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                ($show)(&self.0).serialize(s)
            }
        }
    };
}

parsed! {
    /// A memory size for a build: at least [`MIN_MEM`].
    Mem(usize) = parse_mem, |n: &usize| *n as u64
}
parsed! {
    /// A size in bytes (`256M`).
    Size(usize) = parse_size, |n: &usize| *n as u64
}
parsed! {
    /// A share: `50`, `50%` or `0.5`.
    Percent(f64) = parse_percent, |f: &f64| *f
}
parsed! {
    /// A duration (`30m`, `4h`).
    Duration(std::time::Duration) = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()),
        |d: &std::time::Duration| humantime::format_duration(*d).to_string()
}

parsed! {
    /// `ABC00-DEFFF`: a span of prefixes, whole shards.
    Prefixes((u32, u32)) = crate::fetch::parse_prefixes,
        |p: &(u32, u32)| format!("{}-{}", crate::fetch::prefix_name(p.0), crate::fetch::prefix_name(p.1))
}

pub(crate) fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let m = match s[i..]
                .to_ascii_uppercase()
                .trim_end_matches("IB")
                .trim_end_matches('B')
            {
                "" => 1u64,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1u64 << 30,
                "T" => 1u64 << 40,
                other => return Err(format!("unknown unit {other:?}; use K, M, G or T")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    if n <= 0.0 {
        return Err("size must be positive".into());
    }
    Ok((n * mult as f64) as usize)
}

/// The smallest `--mem`: below it a build would do nothing but spill (`--mem 512` is 512 bytes,
/// almost certainly meant as 512M).
pub(crate) const MIN_MEM: usize = 1 << 20;

pub(crate) fn parse_mem(s: &str) -> std::result::Result<usize, String> {
    let n = parse_size(s)?;
    if n < MIN_MEM {
        return Err(format!(
            "{s} is {n} bytes, below the 1M minimum (did you mean {s}M?)"
        ));
    }
    Ok(n)
}

/// `50`, `50%` or `0.5` (a share); 0-100%. A whole number is a percentage: `1` is 1%.
pub(crate) fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n, true),
        None => (t, false),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a percentage: {s:?}"))?;
    // `50` and `1` are percentages (an operator writing `max_rejected = 1` means 1%); a number
    // with a decimal point up to 1 is a share (`0.5`); `%` says it outright.
    let share = if pct || v > 1.0 || !num.contains('.') {
        v / 100.0
    } else {
        v
    };
    if !(0.0..=1.0).contains(&share) {
        return Err(format!("{s:?} is not between 0% and 100%"));
    }
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn whole_numbers_are_percentages_and_decimals_up_to_one_are_shares() {
        for (s, want) in [
            ("50", 0.5),
            ("50%", 0.5),
            ("0.5", 0.5),
            ("1", 0.01),
            ("1%", 0.01),
            ("1.0", 1.0),
            ("100", 1.0),
            ("0", 0.0),
        ] {
            assert_eq!(parse_percent(s), Ok(want), "{s}");
        }
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
    }
}
