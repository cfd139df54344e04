#!/usr/bin/env python3
"""Generate a fleet of simulated DirectAdmin servers for scripts/bench-fleet.sh (stdlib only).

    gen-fleet.py init DIR SERVERS ACCOUNTS [--leaked 0.05] [--per-domain 20] [--seed 28] [--jobs 2]
    gen-fleet.py night DIR NIGHT SERVER... [--rate 0.005]

`init` writes, for each server sNN (s01 .. sSERVERS), a DirectAdmin tree DIR/sNN/da of ACCOUNTS
mailboxes over ACCOUNTS/per-domain domains (`sNNdDDDD.example`, each with its own owner `sNNuDDDD`
whose user.conf gives the contact `sNNuDDDD@customers.example`: one notice per domain with a
finding), the accounts as DIR/sNN/accounts.tsv (the generator's own bookkeeping for `night`), and
DIR/combo.txt: a combolist whose rows give a fraction --leaked of all mailboxes their *current*
password (round(per-domain * leaked) per domain, so each such domain has a confirmed leak:
`current_password_leaked`, critical, one notice to its owner).

Passwords are stored as {SSHA256} (salted SHA-256, base64, as `doveadm pw -s SSHA256` writes):
breach-audit verifies it offline at millions per second, so the run measures the state, not the
hashing, and 1M hashes are made in seconds here. `init` makes the servers in --jobs worker
processes (default: 2, or fewer cores), each server from its own seed, so the files are the same
for any --jobs.

`night` applies one night of churn to the named servers (a fraction --rate of each one's
mailboxes changes): 40% of the changes are leaked mailboxes whose owner changes the password
(their confirmed leak resolves), 40% are clean mailboxes whose current password appears in a new
combolist row (appended to DIR/combo.txt: a new confirmed leak and a notice), 10% mailboxes
deleted and 10% created. It rewrites those servers' passwd files and prints what it did.
"""
import base64, hashlib, multiprocessing, os, random, sys

TSV = "accounts.tsv"


def ssha256(password: str, rng: random.Random) -> str:
    salt = rng.randbytes(4)
    return "{SSHA256}" + base64.b64encode(hashlib.sha256(password.encode() + salt).digest() + salt).decode()


ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_password(rng: random.Random) -> str:
    return "".join(rng.choices(ALPHABET, k=12))


def opt(args, name, default):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return type(default)(v)
    return default


def write_tree(sdir: str, server: str, accounts):
    """accounts: list of [local, domain, hash, password, leaked] rows; writes the DA tree."""
    virt = os.path.join(sdir, "da", "etc", "virtual")
    users = os.path.join(sdir, "da", "usr", "local", "directadmin", "data", "users")
    by_domain = {}
    for a in accounts:
        by_domain.setdefault(a[1], []).append(a)
    owners = []
    for domain in sorted(by_domain):
        owner = domain.split(".")[0].replace("d", "u", 1)
        owners.append(f"{domain}: {owner}\n")
        d = os.path.join(virt, domain)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "passwd.new"), "w") as f:
            for local, _, h, _, _ in by_domain[domain]:
                f.write(f"{local}:{h}:5000:5000::/home/{owner}/imap/{domain}/{local}:/bin/false\n")
        os.replace(os.path.join(d, "passwd.new"), os.path.join(d, "passwd"))
        u = os.path.join(users, owner)
        if not os.path.exists(os.path.join(u, "user.conf")):
            os.makedirs(u, exist_ok=True)
            with open(os.path.join(u, "user.conf"), "w") as f:
                f.write(f"username={owner}\nemail={owner}@customers.example\n")
    with open(os.path.join(virt, "domainowners"), "w") as f:
        f.writelines(owners)


def save(sdir: str, accounts):
    with open(os.path.join(sdir, TSV + ".new"), "w") as f:
        for a in accounts:
            f.write("\t".join(map(str, a)) + "\n")
    os.replace(os.path.join(sdir, TSV + ".new"), os.path.join(sdir, TSV))


def load(sdir: str):
    out = []
    with open(os.path.join(sdir, TSV)) as f:
        for line in f:
            local, domain, h, pw, leaked = line.rstrip("\n").split("\t")
            out.append([local, domain, h, pw, int(leaked)])
    return out


def init_server(job):
    """One server's tree and bookkeeping; returns its combolist rows (run in a worker)."""
    root, s, count, per_domain, per_leak, seed = job
    server = f"s{s:02d}"
    rng = random.Random(seed * 1000 + s)
    sdir = os.path.join(root, server)
    accounts, combo = [], []
    for d in range(count // per_domain):
        domain = f"{server}d{d:04d}.example"
        leak_at = set(rng.sample(range(per_domain), per_leak))
        for m in range(per_domain):
            local = f"user{m:02d}"
            pw = new_password(rng)
            lk = 1 if m in leak_at else 0
            if lk:
                combo.append(f"{local}@{domain}:{pw}\n")
            accounts.append([local, domain, ssha256(pw, rng), pw, lk])
    write_tree(sdir, server, accounts)
    save(sdir, accounts)
    return len(accounts), combo


def init(args):
    leaked = opt(args, "--leaked", 0.05)
    per_domain = opt(args, "--per-domain", 20)
    seed = opt(args, "--seed", 28)
    jobs = opt(args, "--jobs", min(2, os.cpu_count() or 1))
    root, servers, count = args[0], int(args[1]), int(args[2])
    per_leak = max(1, round(per_domain * leaked))
    os.makedirs(root, exist_ok=True)
    total = leaks = 0
    work = [(root, s, count, per_domain, per_leak, seed) for s in range(1, servers + 1)]
    # Servers are independent (each its own seeded generator): the same files with any --jobs.
    with open(os.path.join(root, "combo.txt"), "w") as combo:
        if jobs > 1 and servers > 1:
            with multiprocessing.Pool(jobs) as pool:
                done = pool.imap(init_server, work)
                for n, rows in done:
                    total += n; leaks += len(rows); combo.writelines(rows)
        else:
            for job in work:
                n, rows = init_server(job)
                total += n; leaks += len(rows); combo.writelines(rows)
    print(f"{servers} servers, {total} mailboxes, {leaks} with their current password in combo.txt")


def night(args):
    rate = opt(args, "--rate", 0.005)
    root, n, servers = args[0], int(args[1]), args[2:]
    combo = open(os.path.join(root, "combo.txt"), "a")
    did = {"changed": 0, "leaked": 0, "deleted": 0, "created": 0}
    for server in servers:
        rng = random.Random(f"{server}/night{n}")
        sdir = os.path.join(root, server)
        accounts = load(sdir)
        k = max(10, round(len(accounts) * rate))
        leaked = [a for a in accounts if a[4]]
        clean = [a for a in accounts if not a[4]]
        for a in rng.sample(leaked, min(len(leaked), k * 4 // 10)):
            a[3] = new_password(rng)
            a[2] = ssha256(a[3], rng)
            a[4] = 0
            did["changed"] += 1
        for a in rng.sample(clean, min(len(clean), k * 4 // 10)):
            combo.write(f"{a[0]}@{a[1]}:{a[3]}\n")
            a[4] = 1
            did["leaked"] += 1
        size = {}
        for a in accounts:
            size[a[1]] = size.get(a[1], 0) + 1
        gone = set()
        for a in rng.sample(accounts, k // 10):
            if size[a[1]] > 1:  # a domain keeps at least one mailbox
                size[a[1]] -= 1
                gone.add(id(a))
        accounts = [a for a in accounts if id(a) not in gone]
        did["deleted"] += len(gone)
        domains = sorted({a[1] for a in accounts})
        for i in range(k // 10):
            domain = rng.choice(domains)
            pw = new_password(rng)
            accounts.append([f"new{n:03d}x{i:03d}", domain, ssha256(pw, rng), pw, 0])
            did["created"] += 1
        # A deleted mailbox's directory stays (DirectAdmin keeps the domain): rewrite every file.
        write_tree(sdir, server, accounts)
        save(sdir, accounts)
    combo.close()
    print(" ".join(f"{k}={v}" for k, v in did.items()))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("init", "night"):
        sys.exit(__doc__)
    {"init": init, "night": night}[sys.argv[1]](sys.argv[2:])
