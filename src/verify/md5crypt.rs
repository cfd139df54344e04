//! MD5-based crypt strings no crate implements: Apache's `$apr1$` (md5crypt with its own magic)
//! and Sun MD5 (`$md5$`, `$md5,rounds=N$`), ported from libxcrypt's lib/crypt-sunmd5.c (a
//! clean-room version of Passlib's description). Both are checked against hashes made by
//! `openssl passwd -apr1`, `htpasswd -m` and `mkpasswd -m sunmd5` (sample-data/kat/).

use super::hash;
use crate::scheme::Alg;
use crate::scheme::cost::ITOA64;

/// Apache's MD5-crypt (`$apr1$`): Poul-Henning Kamp's md5crypt with the magic `$apr1$`
/// (apr_md5.c in APR-util). Hand-written because the crypt crates only know `$1$`; tested against
/// `openssl passwd -apr1` and `htpasswd -m`.
pub(crate) fn apr1(password: &[u8], stored: &str) -> String {
    md5_crypt_with(password, stored, "$apr1$")
}

/// md5crypt (`$1$`) as libxcrypt computes it (lib/crypt-md5.c): the salt is the crypt characters
/// up to a `$` or the end, at most 8 of them; any other character makes the setting invalid
/// (`None`). The same function as [`apr1`] with the magic `$1$`: no RustCrypto crate has it
/// either. Tested against `mkpasswd -m md5crypt`, `openssl passwd -1` and libxcrypt
/// (sample-data/kat/).
pub(crate) fn md5_crypt(password: &[u8], setting: &str) -> Option<String> {
    let rest = setting.strip_prefix("$1$")?;
    let salt = rest.split('$').next().unwrap_or("");
    if !salt
        .bytes()
        .all(|c| crate::scheme::cost::itoa64(c).is_some())
    {
        return None;
    }
    Some(md5_crypt_with(password, setting, "$1$"))
}

fn md5_crypt_with(password: &[u8], stored: &str, magic: &str) -> String {
    let rest = stored.strip_prefix(magic).unwrap_or("");
    let salt: &str = rest.split('$').next().unwrap_or("");
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let md5 = |parts: &[&[u8]]| hash(Alg::Md5, parts);
    let mut alt = md5(&[password, salt, password]);
    let mut ctx: Vec<u8> = [password, magic.as_bytes(), salt].concat();
    let mut n = password.len();
    while n > 0 {
        ctx.extend_from_slice(&alt[..n.min(16)]);
        n = n.saturating_sub(16);
    }
    let mut i = password.len();
    while i > 0 {
        ctx.push(if i & 1 == 1 { 0 } else { password[0] });
        i >>= 1;
    }
    alt = md5(&[&ctx]);
    // The 1000 rounds: each digest fed straight in, nothing allocated.
    use md5::Digest;
    let mut d: [u8; 16] = alt[..16].try_into().expect("an MD5 digest is 16 bytes");
    for r in 0..1000 {
        let mut c = md5::Md5::new();
        c.update(if r & 1 == 1 { password } else { &d });
        if r % 3 != 0 {
            c.update(salt);
        }
        if r % 7 != 0 {
            c.update(password);
        }
        c.update(if r & 1 == 1 { &d } else { password });
        d = c.finalize().into();
    }
    let alt = d;
    let mut out = format!("{magic}{}$", String::from_utf8_lossy(salt));
    push_md5_digest(&mut out, &alt);
    out
}

/// The 16 digest bytes in md5crypt's permuted order and alphabet (shared by Sun MD5).
fn push_md5_digest(out: &mut String, d: &[u8]) {
    let mut push = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f =
        |a: usize, b: usize, c: usize| ((d[a] as u32) << 16) | ((d[b] as u32) << 8) | d[c] as u32;
    push(f(0, 6, 12), 4);
    push(f(1, 7, 13), 4);
    push(f(2, 8, 14), 4);
    push(f(3, 9, 15), 4);
    push(f(4, 10, 5), 4);
    push(d[11] as u32, 2);
}

/// Hamlet's soliloquy, hashed in or not at each Sun MD5 round by a coin toss; the text (with its
/// trailing NUL) is libxcrypt's, from Project Gutenberg's 2ws2610.
const HAMLET: &str = "To be, or not to be,--that is the question:--\n\
Whether 'tis nobler in the mind to suffer\n\
The slings and arrows of outrageous fortune\n\
Or to take arms against a sea of troubles,\n\
And by opposing end them?--To die,--to sleep,--\n\
No more; and by a sleep to say we end\n\
The heartache, and the thousand natural shocks\n\
That flesh is heir to,--'tis a consummation\n\
Devoutly to be wish'd. To die,--to sleep;--\n\
To sleep! perchance to dream:--ay, there's the rub;\n\
For in that sleep of death what dreams may come,\n\
When we have shuffled off this mortal coil,\n\
Must give us pause: there's the respect\n\
That makes calamity of so long life;\n\
For who would bear the whips and scorns of time,\n\
The oppressor's wrong, the proud man's contumely,\n\
The pangs of despis'd love, the law's delay,\n\
The insolence of office, and the spurns\n\
That patient merit of the unworthy takes,\n\
When he himself might his quietus make\n\
With a bare bodkin? who would these fardels bear,\n\
To grunt and sweat under a weary life,\n\
But that the dread of something after death,--\n\
The undiscover'd country, from whose bourn\n\
No traveller returns,--puzzles the will,\n\
And makes us rather bear those ills we have\n\
Than fly to others that we know not of?\n\
Thus conscience does make cowards of us all;\n\
And thus the native hue of resolution\n\
Is sicklied o'er with the pale cast of thought;\n\
And enterprises of great pith and moment,\n\
With this regard, their currents turn awry,\n\
And lose the name of action.--Soft you now!\n\
The fair Ophelia!--Nymph, in thy orisons\n\
Be all my sins remember'd.\n\0";

fn bit(d: &[u8; 16], n: u32) -> u32 {
    let n = n % 128;
    u32::from(d[(n / 8) as usize] >> (n % 8) & 1)
}

/// muffet_coin_toss() of libxcrypt.
fn coin_toss(d: &[u8; 16], round: u32) -> bool {
    let pick = |i: usize| {
        let (a, b) = (u32::from(d[i % 16]), u32::from(d[(i + 3) % 16]));
        let mut v = u32::from(d[((a >> (b % 5)) % 16) as usize]);
        if b & (1 << (a % 8)) != 0 {
            v /= 2;
        }
        bit(d, v)
    };
    let (mut x, mut y) = (0u32, 0u32);
    for i in 0..8 {
        x |= pick(i) << i;
        y |= pick(i + 8) << i;
    }
    if bit(d, round) == 1 {
        x /= 2;
    }
    if bit(d, round.wrapping_add(64)) == 1 {
        y /= 2;
    }
    bit(d, x) ^ bit(d, y) == 1
}

/// Sun MD5 of `password` with the setting of `stored`; the result equals `stored` when it matches
/// (empty when the setting is malformed). Rounds are bounded by the caller's cost limits.
pub(crate) fn sunmd5(password: &[u8], stored: &str) -> String {
    let Some((setting_len, rounds)) = sunmd5_setting(stored) else {
        return String::new();
    };
    let setting = &stored.as_bytes()[..setting_len];
    let digest =
        |parts: &[&[u8]]| -> [u8; 16] { hash(Alg::Md5, parts).try_into().expect("16 bytes") };
    let mut d = digest(&[password, setting]);
    for i in 0..rounds {
        let n = i.to_string();
        d = if coin_toss(&d, i) {
            digest(&[&d, HAMLET.as_bytes(), n.as_bytes()])
        } else {
            digest(&[&d, n.as_bytes()])
        };
    }
    let mut out = format!("{}$", &stored[..setting_len]);
    push_md5_digest(&mut out, &d);
    out
}

/// The length of the setting part (through the salt, and its `$` when followed by `$` or the
/// end, as the original implementation did) and the number of rounds (4096 + `rounds=`).
fn sunmd5_setting(s: &str) -> Option<(usize, u32)> {
    let rest = s.strip_prefix("$md5")?;
    let mut p = s.len() - rest.len();
    (rest.starts_with('$') || rest.starts_with(',')).then_some(())?;
    p += 1;
    let mut rounds = 4096u32;
    if let Some(r) = s[p..].strip_prefix("rounds=") {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && !r.starts_with('0') && r.as_bytes().get(digits) == Some(&b'$'))
            .then_some(())?;
        let extra: u32 = r[..digits].parse().ok()?;
        rounds = rounds.checked_add(extra)?;
        p += "rounds=".len() + digits + 1;
    }
    p += s[p..].bytes().take_while(|c| ITOA64.contains(c)).count();
    let b = s.as_bytes();
    if p < b.len() && b[p] != b'$' {
        return None;
    }
    if b.get(p) == Some(&b'$') && matches!(b.get(p + 1), Some(b'$') | None) {
        p += 1;
    }
    Some((p, rounds))
}
