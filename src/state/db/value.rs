//! Parameters ([`V`], [`ToV`], `p!`) and result rows ([`Row`] of [`Cell`]s, read with
//! [`FromCell`]): what the state code hands to and gets from either engine.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// A parameter.
#[derive(Clone, Debug)]
pub(crate) enum V<'a> {
    Null,
    I(i64),
    T(&'a str),
}

/// What can be a parameter.
pub(crate) trait ToV {
    fn v(&self) -> V<'_>;
}

impl ToV for str {
    fn v(&self) -> V<'_> {
        V::T(self)
    }
}
impl ToV for String {
    fn v(&self) -> V<'_> {
        V::T(self)
    }
}
impl ToV for i64 {
    fn v(&self) -> V<'_> {
        V::I(*self)
    }
}
impl ToV for u64 {
    fn v(&self) -> V<'_> {
        V::I(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToV for usize {
    fn v(&self) -> V<'_> {
        V::I(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToV for bool {
    fn v(&self) -> V<'_> {
        V::I(i64::from(*self))
    }
}
impl<T: ToV + ?Sized> ToV for &T {
    fn v(&self) -> V<'_> {
        (**self).v()
    }
}
impl<T: ToV> ToV for Option<T> {
    fn v(&self) -> V<'_> {
        self.as_ref().map_or(V::Null, ToV::v)
    }
}
impl ToV for V<'_> {
    fn v(&self) -> V<'_> {
        self.clone()
    }
}

/// Parameters: `p![a, b, c]`.
macro_rules! p {
    ($($x:expr),* $(,)?) => { &[$($crate::state::ToV::v(&$x)),*][..] };
}
pub(crate) use p;

/// A cell of a result row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    I(i64),
    T(String),
    F(f64),
}

/// A result row.
#[derive(Debug)]
pub(crate) struct Row(pub(super) Vec<Cell>);

/// What a cell can be read as.
pub(crate) trait FromCell: Sized {
    fn from_cell(c: &Cell) -> Option<Self>;
    const WHAT: &'static str;
}

impl FromCell for i64 {
    fn from_cell(c: &Cell) -> Option<i64> {
        match c {
            Cell::I(i) => Some(*i),
            Cell::F(f) => Some(*f as i64),
            Cell::T(t) => t.parse().ok(),
            Cell::Null => None,
        }
    }
    const WHAT: &'static str = "an integer";
}
impl FromCell for u64 {
    fn from_cell(c: &Cell) -> Option<u64> {
        i64::from_cell(c).map(|i| i.max(0) as u64)
    }
    const WHAT: &'static str = "an integer";
}
impl FromCell for bool {
    fn from_cell(c: &Cell) -> Option<bool> {
        i64::from_cell(c).map(|i| i != 0)
    }
    const WHAT: &'static str = "a flag";
}
impl FromCell for String {
    fn from_cell(c: &Cell) -> Option<String> {
        match c {
            Cell::T(t) => Some(t.clone()),
            Cell::I(i) => Some(i.to_string()),
            Cell::F(f) => Some(f.to_string()),
            Cell::Null => None,
        }
    }
    const WHAT: &'static str = "text";
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(c: &Cell) -> Option<Option<T>> {
        match c {
            Cell::Null => Some(None),
            c => T::from_cell(c).map(Some),
        }
    }
    const WHAT: &'static str = T::WHAT;
}

impl Row {
    /// Column `i` as a `T`.
    pub(crate) fn get<T: FromCell>(&self, i: usize) -> Result<T> {
        let c = self.0.get(i).unwrap_or(&Cell::Null);
        T::from_cell(c).ok_or_else(|| Error::State {
            path: PathBuf::new(),
            msg: format!(
                "state database: column {} is {}, expected {} (a damaged or foreign database?)",
                i + 1,
                match c {
                    Cell::Null => "NULL",
                    Cell::I(_) => "an integer",
                    Cell::T(_) => "text",
                    Cell::F(_) => "a real",
                },
                T::WHAT
            ),
        })
    }
}
