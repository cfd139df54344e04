//! Options declared once, for the command line and the config file alike.
//!
//! Each group of options is one struct deriving clap's `Args` (its flags) and serde's
//! `Deserialize` (its keys in the audit config), wrapped in [`options!`](crate::options) which
//! also derives [`Merge`]: the one rule by which a flag overrides the file. A path in the file is
//! relative to the file's directory; that is done here, by type ([`ConfigPath`]), so a new path
//! option cannot forget it. (ripgrep feeds its config file to its flag parser; our config has
//! tables, `[[sql]]` lists and sections no flag has, so the file is read by serde into the same
//! structs and merged.)
//!
//! Hand-written because no crate does both halves: `clap` has no config files, and the config
//! crates (`figment`, `config`) merge by key name into one bag, losing clap's types and help.

use crate::error::{Error, IoContext, Result};
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// How a command-line value and the config file's combine: the flag wins when it was given.
pub trait Merge {
    /// `self` from the command line over `file` from the config file.
    fn merge(self, file: Self) -> Self;
}

/// A single value: the flag's when given, else the file's.
impl<T> Merge for Option<T> {
    fn merge(self, file: Self) -> Self {
        self.or(file)
    }
}

/// A list: a repeated flag replaces the file's whole list.
impl<T> Merge for Vec<T> {
    fn merge(self, file: Self) -> Self {
        if self.is_empty() { file } else { self }
    }
}

/// A switch: on when either turns it on.
impl Merge for bool {
    fn merge(self, file: Self) -> Self {
        self || file
    }
}

/// Declare an option group: the struct as written (with its clap and serde attributes) and its
/// [`Merge`], field by field. Every field's type must be [`Merge`] (an `Option`, a `Vec`, a
/// `bool` or another group), so a group cannot hold an option without the rule.
#[macro_export]
#[doc(hidden)]
macro_rules! options {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field : $ty ),*
        }
        impl $crate::config::Merge for $name {
            fn merge(self, file: Self) -> Self {
                Self { $( $field: $crate::config::Merge::merge(self.$field, file.$field) ),* }
            }
        }
    };
}

thread_local! {
    /// The directory of the config file being read, while it is read.
    static BASE: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// A path option. From a flag it is taken as given (relative to the working directory); from
/// the config file a relative path is made absolute against the file's own directory (as
/// canonicalised), so the same config read as `a.toml`, `/etc/x/a.toml` or from cron's `/`
/// names the same files: the index is not rebuilt and a suspension file is the same file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigPath(PathBuf);

impl ConfigPath {
    pub fn into_path_buf(self) -> PathBuf {
        self.0
    }
}

impl std::ops::Deref for ConfigPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ConfigPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl From<PathBuf> for ConfigPath {
    fn from(p: PathBuf) -> ConfigPath {
        ConfigPath(p)
    }
}

impl From<ConfigPath> for PathBuf {
    fn from(p: ConfigPath) -> PathBuf {
        p.0
    }
}

impl std::str::FromStr for ConfigPath {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<ConfigPath, Self::Err> {
        Ok(ConfigPath(PathBuf::from(s)))
    }
}

/// Inside [`ConfigFile::get`]: `path` made absolute against the config file's directory when relative;
/// elsewhere (a flag, a test) as given. For values that hold a path inside a string
/// (`sqlite:PATH`), use this on the path part.
pub fn rebase(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    BASE.with(|b| match &*b.borrow() {
        Some(base) => base.join(&path),
        None => path,
    })
}

impl<'de> serde::Deserialize<'de> for ConfigPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let p = PathBuf::deserialize(d)?;
        Ok(ConfigPath(rebase(p)))
    }
}

impl serde::Serialize for ConfigPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A config file, read and its keys checked; each option group takes its keys from it with
/// [`ConfigFile::get`].
pub struct ConfigFile {
    path: PathBuf,
    text: String,
    /// The file's directory, canonicalised: what its relative paths are relative to.
    base: PathBuf,
}

impl ConfigFile {
    /// Read a TOML config file. `known`: every top-level key some group takes (see [`fields`]);
    /// any other key is an error naming it and the file (a typo must not silently drop an
    /// option).
    pub fn read(path: &Path, known: &[&str]) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).at(path)?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| Error::bad_input(path, e.to_string().trim().to_string()))?;
        let unknown: Vec<String> = table
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| format!("`{k}`"))
            .collect();
        if !unknown.is_empty() {
            let mut expected: Vec<&str> = known.to_vec();
            expected.sort_unstable();
            return Err(Error::bad_input(
                path,
                format!(
                    "unknown key{} {}: expected one of {}",
                    if unknown.len() > 1 { "s" } else { "" },
                    unknown.join(", "),
                    expected.join(", ")
                ),
            ));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let base = std::fs::canonicalize(dir).at(dir)?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
            base,
        })
    }

    /// The file's values of one option group (its other keys belong to other groups), with
    /// relative [`ConfigPath`]s made absolute against the file's directory. A type error names
    /// the file, line and key.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T> {
        let previous = BASE.with(|b| b.replace(Some(self.base.clone())));
        let parsed = toml::from_str::<T>(&self.text);
        BASE.with(|b| *b.borrow_mut() = previous);
        parsed.map_err(|e| Error::bad_input(&self.path, e.to_string().trim().to_string()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The keys a struct deriving `Deserialize` takes (after `rename`; without `skip`ped fields), as
/// serde's derive tells a deserializer. Only for plain structs: one with `#[serde(flatten)]`
/// fields does not list them (it is read as a map), and gets an empty list here.
pub fn fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields(&'static [&'static str]);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Stop {
            Stop
        }
    }
    struct Probe<'a>(&'a mut Fields);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Stop> {
            self.0.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut f = Fields(&[]);
    let _ = T::deserialize(Probe(&mut f));
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::options! {
        #[derive(serde::Deserialize, Default, Debug, PartialEq)]
        struct Group {
            #[serde(default)]
            list: Vec<ConfigPath>,
            one: Option<ConfigPath>,
            #[serde(default, rename = "on")]
            switch: bool,
        }
    }

    #[test]
    fn a_flag_overrides_the_file_and_a_list_replaces_it_whole() {
        let file = Group {
            list: vec!["a".parse().unwrap(), "b".parse().unwrap()],
            one: Some("f".parse().unwrap()),
            switch: true,
        };
        let flags = Group {
            list: vec!["c".parse().unwrap()],
            one: None,
            switch: false,
        };
        let m = flags.merge(file);
        assert_eq!(m.list, vec!["c".parse().unwrap()]);
        assert_eq!(m.one, Some("f".parse().unwrap()));
        assert!(m.switch);
    }

    #[test]
    fn config_paths_are_relative_to_the_file_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("etc");
        std::fs::create_dir(&sub).unwrap();
        let f = sub.join("a.toml");
        std::fs::write(&f, "list = [\"x\", \"/abs\"]\none = \"../y\"\non = true\n").unwrap();
        let g: Group = ConfigFile::read(&f, fields::<Group>())
            .unwrap()
            .get()
            .unwrap();
        let base = std::fs::canonicalize(&sub).unwrap();
        assert_eq!(&*g.list[0], base.join("x"));
        assert_eq!(&*g.list[1], Path::new("/abs"));
        assert_eq!(&*g.one.unwrap(), base.join("../y"));
        // Outside a config file, a path is as given.
        assert_eq!(&*"x".parse::<ConfigPath>().unwrap(), Path::new("x"));
        assert_eq!(fields::<Group>(), ["list", "one", "on"]);
        std::fs::write(&f, "lst = [\"x\"]\n").unwrap();
        let e = ConfigFile::read(&f, fields::<Group>())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.toml") && e.contains("`lst`"), "{e}");
        assert!(e.contains("list, on, one"), "{e}");
    }
}
