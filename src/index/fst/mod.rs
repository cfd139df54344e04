//! fst maps written and read by hand, in the fst crate's own format (like fst's `raw/`): a writer
//! for sorted keys ([`mod@write`], ~30 ns a key against 650-830 for `fst::MapBuilder`) and every
//! read of an index fst ([`mod@read`]: opening, lookups, prefix streams, checksums), checked so that
//! no bytes make it panic. Hand-written because the crate's builder allocates per node and
//! registers every node (70% of a build's cycles), and its reader panics on damaged input. The
//! crate is only a dev-dependency, the reference the tests compare with; both depend on its exact
//! format: it is pinned with `=` in Cargo.toml and the tests below fail if its format moves.

pub mod read;
pub mod write;

#[cfg(test)]
mod tests {
    /// The fst crate still reads and writes the format version `write` writes, and reads a map
    /// written by `write` as `read` does. (`write::tests` compares whole maps with fst's builder.)
    #[test]
    fn fst_format_version_is_the_one_written() {
        assert_eq!(fst::raw::VERSION, super::write::FST_VERSION);
        let mut ours = super::write::FixedFstWriter::new(Vec::new(), 2, 0).unwrap();
        ours.insert(b"ab", 7).unwrap();
        ours.insert(b"ac", 0).unwrap();
        let bytes = ours.finish().unwrap();
        let map = fst::Map::new(bytes.clone()).expect("fst reads our bytes");
        assert_eq!(
            (map.get(b"ab"), map.get(b"ac"), map.get(b"ad")),
            (Some(7), Some(0), None)
        );
        let root = super::read::root(&bytes).unwrap();
        assert_eq!(super::read::get_from(&bytes, root, b"ab").unwrap(), Some(7));
    }
}
