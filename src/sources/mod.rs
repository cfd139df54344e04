//! Readers of every input: breach dumps (`hibp`) and the provider's account stores (`accounts`).
//! Each reader turns a real file layout into plain records and counts what it rejects.

pub mod accounts;
pub mod combolist;
pub mod fingerprint;
pub mod hibp;
