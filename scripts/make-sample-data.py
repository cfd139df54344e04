#!/usr/bin/env python3
"""Regenerate the committed fixtures in sample-data/ (run once; the output is committed).

Password hashes of accounts are made by the real tools: `doveadm pw` (dovecot-core), `mkpasswd`
(whois) and `htpasswd` (apache2-utils); SHA-1 by hashlib, NTLM by `mkpasswd -m nt`. The dumps carry
every quirk of ../shared/FORMATS.md: BOM, CRLF, no final newline, padding rows, blank and junk
lines, an NTLM line inside a SHA-1 file, lowercase hex, multi-member gzip, zstd, range files.
"""
import gzip, hashlib, os, random, subprocess, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sample-data")
rng = random.Random(20261122)


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def sha1(p: bytes) -> str:
    return hashlib.sha1(p).hexdigest().upper()


def ntlm(p: str) -> str:
    # openssl MD4 over the UTF-16LE password, as Windows and HIBP compute it. (`mkpasswd -m nt`
    # widens each UTF-8 *byte*, which is wrong for non-ASCII passwords; it is used below only for
    # an ASCII one, to get its `$3$$` format.)
    r = subprocess.run(["openssl", "dgst", "-md4", "-provider", "legacy", "-provider", "default", "-r"],
                       input=p.encode("utf-16-le"), check=True, capture_output=True)
    return r.stdout.split()[0].decode().upper()


def filler(n, digits):
    return ["".join(rng.choice("0123456789ABCDEF") for _ in range(digits)) for _ in range(n)]


# Passwords in the dumps, with counts.
SHA1_MAIN = {"password": 52256179, "123456": 37359195, "Summer2024!": 1402, "hunter2": 43960,
             "letmein": 1151871, "qwerty": 10727868, "pass:word": 12}
NTLM_MAIN = {"password": 52256179, "Summer2024!": 1402, "pässwörd": 31, "Winter2025": 77}
ZST_EXTRA = {"correct horse battery staple": 390, "trustno1": 151393}
RANGE_ONLY = {"Passw0rd!": 230157, "monkey123": 20987}
PADDING_ONLY = "never-breached-padding"  # appears only as a :0 padding row


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    hibp = os.path.join(ROOT, "hibp")
    # 1. SHA-1 file, sorted, BOM + CRLF, no final newline, padding row, blank + junk lines, an NTLM
    #    line in the middle (real corruption), one lowercase hash.
    rows = [(sha1(p.encode()), c) for p, c in SHA1_MAIN.items()]
    rows += [(h, rng.choice([1, 1, 1, 2, 3, 17, 250])) for h in filler(300, 40)]
    rows.append((sha1(PADDING_ONLY.encode()), 0))
    rows.sort()
    lines = [f"{h}:{c}" for h, c in rows]
    lines[10] = lines[10].lower()
    lines.insert(50, "")
    lines.insert(120, f"{ntlm('Winter2025')}:77")
    lines.insert(200, "<html><body>rate limited</body></html>")
    write(os.path.join(hibp, "pwned-passwords-sha1.txt"),
          b"\xef\xbb\xbf" + "\r\n".join(lines).encode())
    # 2. NTLM dump, LF, as a two-member gzip.
    rows = sorted([(ntlm(p), c) for p, c in NTLM_MAIN.items()] + [(h, 1) for h in filler(200, 32)])
    text = "".join(f"{h}:{c}\n" for h, c in rows).encode()
    half = len(text) // 2
    half = text.rindex(b"\n", 0, half) + 1
    write(os.path.join(hibp, "pwned-passwords-ntlm.txt.gz"),
          gzip.compress(text[:half], mtime=0) + gzip.compress(text[half:], mtime=0))
    # 3. Unsorted ("ordered by prevalence") SHA-1 extra, zstd.
    rows = [(sha1(p.encode()), c) for p, c in ZST_EXTRA.items()] + [(h, 5) for h in filler(50, 40)]
    rows.sort(key=lambda r: -r[1])
    plain = "".join(f"{h}:{c}\n" for h, c in rows).encode()
    write(os.path.join(hibp, "extra-by-prevalence.txt"), plain)
    subprocess.run(["zstd", "-q", "-f", "--rm", os.path.join(hibp, "extra-by-prevalence.txt")], check=True)
    # 4. Range directory: the prefixes of the RANGE_ONLY passwords plus one filler prefix, with a
    #    BOM, padding rows and CRLF, as the downloader writes them.
    rdir = os.path.join(hibp, "ranges")
    os.makedirs(rdir, exist_ok=True)
    for f in os.listdir(rdir):
        os.remove(os.path.join(rdir, f))
    for p, c in RANGE_ONLY.items():
        h = sha1(p.encode())
        rows = sorted([(h[5:], c)] + [(s, 0) for s in filler(3, 35)] + [(s, 2) for s in filler(5, 35)])
        body = "\r\n".join(f"{s}:{n}" for s, n in rows) + "\r\n"
        write(os.path.join(rdir, h[:5] + ".txt"), b"\xef\xbb\xbf" + body.encode())
    write(os.path.join(rdir, "README"), b"not a range file: skipped with a warning\n")

    acc = os.path.join(ROOT, "accounts")
    # CSV export: BOM, CRLF, header in another case, every stored-hash form.
    cram = sh("doveadm", "pw", "-s", "CRAM-MD5", "-p", "password")
    crypt6 = sh("mkpasswd", "-m", "sha512crypt", "Summer2024!")
    rows = [
        ("Email", "Hash"),
        ("alice@example.org", sha1(b"password")),
        ("Bob@Example.ORG ", ntlm("Summer2024!").lower()),
        ("carol@example.org", sh("doveadm", "pw", "-s", "SHA", "-p", "not in any dump 9f3k")),
        ("dave@example.net", "{PLAIN}hunter2"),
        ("erin@example.net", cram),
        ("frank@example.net", crypt6),
        ("grace@bücher.example", sha1(b"123456")),
        ("not-an-email", "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"),
        ("heidi@example.org", "{PLAIN}pass,word"),
        ("ivan@example.org", sha1(PADDING_ONLY.encode())),
        ("judy@example.org", sha1(b"Passw0rd!")),
        ("ken@example.org", sha1(b"trustno1")),
        ("mallory@example.org", sh("mkpasswd", "-m", "nt", "Winter2025")),
    ]
    def q(s):
        return '"' + s.replace('"', '""') + '"' if ("," in s or '"' in s) else s
    write(os.path.join(acc, "export.csv"),
          b"\xef\xbb\xbf" + "".join(f"{q(e)},{q(h)}\r\n" for e, h in rows).encode())
    # Dovecot passwd-file: comments, blank lines, extra fields, a non-UTF-8 (Latin-1) password.
    users = [
        "# Dovecot passwd-file, made with doveadm pw / htpasswd / mkpasswd",
        f"alice@example.com:{sh('doveadm', 'pw', '-s', 'SHA512-CRYPT', '-p', 'password')}:1000:1000::/home/vmail/alice::",
        "bob@example.com:{PLAIN}letmein:1000:1000::/home/vmail/bob::userdb_quota_rule=*:storage=1G",
        "",
        f"carol@example.com:{sh('doveadm', 'pw', '-s', 'SHA', '-p', 'qwerty')}:1000:1000::/home/vmail/carol::",
        f"dan@example.com:{sh('htpasswd', '-nbB', 'dan', 'password').split(':', 1)[1]}:1000:1000::/home/vmail/dan::",
        f"eve@example.com:{sh('doveadm', 'pw', '-s', 'SCRAM-SHA-256', '-p', 'password')}:1000:1000::/home/vmail/eve::",
        "nodomain:{PLAIN}letmein:1000:1000::/home/vmail/nodomain::",
        f"Olga@Example.COM:{sh('doveadm', 'pw', '-s', 'SSHA256', '-p', 'password')}:1000:1000::/home/vmail/olga::",
    ]
    data = "\n".join(users).encode() + b"\n"
    data += b"frank@example.com:{PLAIN}p\xe4ssw\xf6rd:1000:1000::/home/vmail/frank::\n"
    write(os.path.join(acc, "dovecot-users"), data)


def combolists():
    """Combolists with the quirks of real ones; the addresses overlap the sample accounts."""
    cdir = os.path.join(ROOT, "combolists")
    os.makedirs(cdir, exist_ok=True)
    lines = [
        b"| leaked by somebody | Collection sample | 2026 |",
        b"alice@example.com:password",                   # crypt account, leaked current password
        b"alice@example.com:Password1",
        b"ALICE@Example.COM :password",                  # same row again: deduplicated
        b"carol@example.org;pa;ss;word",                 # separator inside the password
        b"frank@example.net\tSummer2024!",               # tab separator
        b"  bob@example.org   hunter 2",                 # space separator, stray spaces
        b"grace@b\xc3\xbccher.example:123456",           # IDN domain in Unicode ...
        b"grace@xn--bcher-kva.example:letmein",          # ... and punycode: one address
        b"olga@example.com:p\xe4ssw\xf6rd",              # Latin-1 password, kept as bytes
        b"dan@example.com:5f4dcc3b5aa765d61d8327deb882cf99",  # email:hash row (MD5)
        b"eve@example.com:null",                         # placeholder
        b"eve@example.com:xxx",
        b"zoe@mail.example.org:zoe-pass-1",              # subdomain
        b"yann@other.example:trustno1",
        b"INSERT INTO `users` VALUES (1,'admin','5f4dcc3b');",
        b"<html><head><title>Index of /</title></head>",
        b"not-an-address:password",
        b"broken@localhost:password",                    # invalid address
        b"nul\x00byte@example.org:x",
        b"",
        b"x" * 5000,                                     # a huge line
        b"last@example.org:no-final-newline",
    ]
    write(os.path.join(cdir, "collection-sample.txt"), b"\xef\xbb\xbf" + b"\r\n".join(lines))
    # A second list, gzip with two members, repeating one row of the first (deduplicated).
    more = b"alice@example.com:password\nheidi@example.org:pass,word\n"
    more2 = b"mallory@example.org:Winter2025\nquinn@example.net:Qu1nn!\n"
    write(os.path.join(cdir, "more.txt.gz"), gzip.compress(more, mtime=0) + gzip.compress(more2, mtime=0))
    # A third, zstd.
    plain = b"dave@example.net:hunter2\nken@example.org:trustno1\n"
    write(os.path.join(cdir, "third.txt"), plain)
    subprocess.run(["zstd", "-q", "-f", "--rm", os.path.join(cdir, "third.txt")], check=True)


def kat():
    """Known-answer hashes made by the real tools: `password_hex<TAB>tool<TAB>stored hash` where the
    stored hash is what a passwd-file/shadow would hold. Passwords include a ':' and non-ASCII.
    DIGEST-MD5 hashes the login name too: its tool column names it (`-u LOGIN`)."""
    out = []
    pws = ["password", "pass:word", "pässwörd"]
    dove = ["SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID", "SHA",
            "SHA1", "SSHA", "SHA256", "SSHA256", "SHA512", "SSHA512", "PLAIN-MD5", "LDAP-MD5", "SMD5",
            "PLAIN", "CLEARTEXT", "CLEAR", "SHA256.HEX", "SSHA.HEX", "PLAIN-MD5.b64", "PLAIN.b64",
            "DES-CRYPT", "CRYPT", "MD5", "PBKDF2", "SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN-MD4",
            "CRAM-MD5", "HMAC-MD5", "OTP", "CRAM-MD5.b64", "SHA512-CRYPT.b64", "PBKDF2.hex",
            "OTP.b64", "SCRAM-SHA-256.hex", "SHA1.base64"]
    for pw in pws:
        for sch in dove:
            if sch in ("DES-CRYPT", "CRYPT") and pw != "password":
                continue  # DES crypt truncates to 8 ASCII characters
            out.append((pw, f"doveadm pw -s {sch}", sh("doveadm", "pw", "-s", sch, "-p", pw)))
        for sch in ["DIGEST-MD5", "DIGEST-MD5.b64"]:
            for login in ["u@example.org", "u"]:
                out.append((pw, f"doveadm pw -s {sch} -u {login}",
                            sh("doveadm", "pw", "-s", sch, "-u", login, "-p", pw)))
        for m in ["sha512crypt", "sha256crypt", "md5crypt", "bcrypt", "bcrypt-a", "yescrypt",
                  "gost-yescrypt", "scrypt", "sunmd5", "nt", "bsdicrypt"]:
            out.append((pw, f"mkpasswd -m {m}", sh("mkpasswd", "-m", m, pw)))
        out.append((pw, "htpasswd -nbB", sh("htpasswd", "-nbB", "u", pw).split(":", 1)[1]))
        out.append((pw, "htpasswd -nbs", sh("htpasswd", "-nbs", "u", pw).split(":", 1)[1]))
        out.append((pw, "htpasswd -nbm", sh("htpasswd", "-nbm", "u", pw).split(":", 1)[1]))
        for o in ["-1", "-5", "-6", "-apr1"]:
            out.append((pw, f"openssl passwd {o}", sh("openssl", "passwd", o, pw)))
    out.append(("password", "mkpasswd -m descrypt", sh("mkpasswd", "-m", "descrypt", "password")))
    lines = ["# password (hex)\ttool\tstored hash; made by scripts/make-sample-data.py"]
    lines += [f"{pw.encode().hex()}\t{tool}\t{h}" for pw, tool, h in out]
    # What a tool makes that cannot verify a plaintext: doveadm's PLAIN-TRUNC lacks the length
    # prefix Dovecot itself requires (it refuses the login), so it is malformed.
    unver = [("doveadm pw -s PLAIN-TRUNC", sh("doveadm", "pw", "-s", "PLAIN-TRUNC", "-p", "password"))]
    lines += [f"-\t{tool}\t{h}" for tool, h in unver]
    os.makedirs(os.path.join(ROOT, "kat"), exist_ok=True)
    write(os.path.join(ROOT, "kat", "hashes.tsv"), ("\n".join(lines) + "\n").encode())


def servers():
    """A DirectAdmin and a cPanel server tree (only the files breach-audit reads), hashes made by
    the real tools, and the combolist of leaks for their customers."""
    base = os.path.join(ROOT, "servers")
    da = os.path.join(base, "directadmin")
    strip = lambda h: h.split("}", 1)[1] if h.startswith("{") else h
    da_accounts = {
        "example.com": [
            ("info", sh("mkpasswd", "-m", "sha512crypt", "Summer2024!")),
            ("sales", sh("openssl", "passwd", "-1", "pass:word")),
            ("ceo", sh("htpasswd", "-nbB", "u", "correct horse battery staple").split(":", 1)[1]),
            ("uni", sh("mkpasswd", "-m", "yescrypt", "pässwörd")),
            ("quiet", sh("mkpasswd", "-m", "sha512crypt", "never leaked 7c1a")),
        ],
        "shop.example": [
            ("orders", strip(sh("doveadm", "pw", "-s", "ARGON2ID", "-p", "orders-2025"))),
            ("admin", sh("openssl", "passwd", "-5", "not the leaked one")),
        ],
    }
    for dom, accs in da_accounts.items():
        lines = [f"{u}:{h}:589:12::/home/{'alice' if dom == 'example.com' else 'bob'}/imap/{dom}/{u}:/bin/false" for u, h in accs]
        write(os.path.join(da, "etc/virtual", dom, "passwd"), ("\n".join(lines) + "\n").encode())
    # Every listed domain has its passwd: the sample config's first audit is complete. Tests of a
    # domain that cannot be read add one to their copy (tests/common: add_missing_domain).
    write(os.path.join(da, "etc/virtual/domainowners"), b"example.com: alice\nshop.example: bob\n")
    write(os.path.join(da, "etc/virtual/domains"), b"example.com\nshop.example\n")
    write(os.path.join(da, "usr/local/directadmin/data/users/alice/user.conf"),
          b"creator=reseller1\nemail=alice.owner@isp.example\nusertype=user\nname=Alice\n")
    # bob has no user.conf: his records have no contact, and a warning names the file.

    cp = os.path.join(base, "cpanel")
    shadow = [
        f"writer:{sh('mkpasswd', '-m', 'sha512crypt', 'hunter2')}:19700::::::",
        f"editor:!{sh('mkpasswd', '-m', 'sha512crypt', 'letmein')}:19700::::::",
        f"guest:{sh('mkpasswd', '-m', 'sha512crypt', 'guest pass 5d2e')}:19700::::::",
        "nologin:*:19700::::::",
    ]
    write(os.path.join(cp, "home/carl/etc/blog.example/shadow"), ("\n".join(shadow) + "\n").encode())
    write(os.path.join(cp, "home/carl/etc/blog.example/passwd"),
          b"writer:x:1001:1001::/home/carl/mail/blog.example/writer:/usr/local/cpanel/bin/noshell\n")
    write(os.path.join(cp, "etc/userdomains"), b"blog.example: carl\n*: nobody\n")
    write(os.path.join(cp, "etc/trueuserowners"), b"carl: root\n")
    write(os.path.join(cp, "var/cpanel/users/carl"), b"OWNER=root\nCONTACTEMAIL=carl@owner.example\nCONTACTEMAIL2=\nPLAN=default\n")

    rows = [
        b"info@example.com:Summer2024!",
        b"sales@example.com:pass:word",
        b"ceo@example.com:wrong-guess",
        b"ceo@example.com:correct horse battery staple",
        "uni@example.com:pässwörd".encode(),
        b"orders@shop.example:orders-2025",
        b"admin@shop.example:something-else",
        b"writer@blog.example:hunter2",
        b"editor@blog.example:letmein",
    ]
    write(os.path.join(ROOT, "combolists", "customers.txt"), b"\n".join(rows) + b"\n")


def crypt_kat():
    """crypt(3) as libxcrypt computes it (the library behind mkpasswd, Dovecot and PAM), called
    through ctypes: `password_hex<TAB>setting<TAB>result` for random passwords (ASCII, UTF-8, 8-bit
    bytes, around DES's 8 and bcrypt's 72 characters) and settings of every scheme verify/crypt.rs
    reads, edges included (cut salts, explicit rounds, refused settings: result `*`). After each
    hash comes a row hashing another password with that hash as the setting, which must differ.
    Bytes 0xff are left out of passwords: libxcrypt's $2a$ tweak for them is a documented
    difference (verify/crypt.rs)."""
    import ctypes
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.crypt.restype = ctypes.c_char_p
    r = random.Random(20261203)
    alpha = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def crypt(pw: bytes, setting: bytes) -> bytes:
        out = lib.crypt(pw, setting)
        return b"*" if out is None or out.startswith(b"*") else out

    def password() -> bytes:
        kind = r.randrange(6)
        if kind == 0:
            return bytes(r.choice(alpha + b" !:#$%&@") for _ in range(r.randrange(0, 16)))
        if kind == 1:
            return "".join(r.choice("aäöüßéè€日本x") for _ in range(r.randrange(1, 10))).encode()
        if kind == 2:
            return bytes(r.randrange(1, 255) for _ in range(r.randrange(1, 30)))
        if kind == 3:
            return bytes(r.choice(alpha) for _ in range(r.randrange(60, 90)))
        if kind == 4:
            return bytes(r.choice(alpha) for _ in range(r.choice([7, 8, 9])))
        return b"password"

    def salt(n: int) -> bytes:
        return bytes(r.choice(alpha) for _ in range(n))

    def b64_24(v: int) -> bytes:
        return bytes(alpha[(v >> (6 * i)) & 63] for i in range(4))

    def setting(kind: str) -> bytes:
        bad = r.random() < 0.1
        if kind in ("$5$", "$6$"):
            rounds = r.choice([b"", b"", b"rounds=1000$", b"rounds=1234$", b"rounds=5000$"])
            if bad:
                rounds = r.choice([b"rounds=999$", b"rounds=01000$", b"rounds=$", b"rounds=1x00$"])
            s = salt(r.randrange(0, 21)) + (b":" if bad and r.random() < 0.5 else b"")
            return kind.encode() + rounds + s + r.choice([b"", b"$"])
        if kind == "$1$":
            return b"$1$" + salt(r.randrange(0, 11)) + (b":" if bad else b"") + r.choice([b"", b"$"])
        if kind.startswith("$2"):
            cost = r.choice([b"04", b"05"]) if not bad else r.choice([b"03", b"4$", b"32", b"+4"])
            return kind.encode() + cost + b"$" + salt(22)
        if kind == "des":
            return salt(2) if not bad else salt(1) + b":"
        return b"_" + b64_24(r.choice([0, 1, 2, 25, r.randrange(300)])) + salt(4) if not bad else b"_" + salt(5)

    rows = []
    for kind in ["$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$", "des", "bsdi"]:
        for _ in range(40):
            pw = password()
            st = setting(kind)
            out = crypt(pw, st)
            rows.append((pw, st, out))
            if out != b"*":
                other = pw + b"x" if r.random() < 0.5 else bytes([pw[0] ^ 1]) + pw[1:] if pw else b"x"
                rows.append((other, out, crypt(other, out)))
    lines = ["# password (hex)\tsetting\tlibxcrypt's crypt() (* when it refuses the setting); "
             "made by scripts/make-sample-data.py crypt-kat"]
    lines += [f"{pw.hex()}\t{st.decode()}\t{out.decode()}" for pw, st, out in rows]
    os.makedirs(os.path.join(ROOT, "kat"), exist_ok=True)
    write(os.path.join(ROOT, "kat", "crypt.tsv"), ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    if sys.argv[1:] == ["kat"]:  # only the known answers
        kat()
        sys.exit(0)
    if sys.argv[1:] == ["crypt-kat"]:  # only libxcrypt's answers
        crypt_kat()
        sys.exit(0)
    servers()
    kat()
    crypt_kat()
    combolists()
    sys.exit(main())
