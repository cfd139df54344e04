-- breach-audit's login hook for Dovecot (2.3 and 2.4): a Lua passdb chained AFTER the real one.
--
-- The real passdb verifies the password (`result_success = continue-ok`); this one runs only then
-- (`skip = unauthenticated`) and asks `breach-audit serve` over its unix socket whether the
-- password is leaked. It FAILS OPEN: the daemon down, slow or answering an error, the login goes
-- on as if this hook were absent (a warning in Dovecot's log, a line in the failures file, which
-- the next `breach-audit audit` counts). It never lets a wrong password in: a request whose
-- password no earlier passdb verified is refused here, whatever the daemon says.
--
-- Settings come from the environment (dovecot.conf: `import_environment`), with these defaults:
--   BREACH_AUDIT_SOCKET    /run/breach-audit/serve.sock
--   BREACH_AUDIT_TIMEOUT   0.25 (seconds, the whole exchange)
--   BREACH_AUDIT_FAILURES  /var/log/breach-audit/hook-failures (one line per failure: the time
--                          and why, never a user or a password; in a directory the auth workers
--                          can write: they run as `dovecot` unless configured otherwise)
--
-- Needs Debian's dovecot-auth-lua and lua-socket. The password goes to the socket, hex-encoded,
-- and nowhere else: not to a log, not to a file.

local SOCKET = os.getenv("BREACH_AUDIT_SOCKET") or "/run/breach-audit/serve.sock"
local TIMEOUT = tonumber(os.getenv("BREACH_AUDIT_TIMEOUT") or "") or 0.25
local FAILURES = os.getenv("BREACH_AUDIT_FAILURES") or "/var/log/breach-audit/hook-failures"

local ok_unix, unix = pcall(require, "socket.unix")

local function failed(why)
  dovecot.i_warning("breach-audit: login hook failed open: " .. why)
  local f = io.open(FAILURES, "a")
  if f then
    f:write(string.format("%d\t%s\n", os.time(), why))
    f:close()
  end
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Ask the daemon; nil and the reason on any failure.
local function ask(service, user, password)
  if not ok_unix then
    return nil, "lua-socket (socket.unix) is not installed"
  end
  local c = unix()
  if not c then
    return nil, "cannot create a unix socket"
  end
  c:settimeout(TIMEOUT, "t")
  local ok, err = c:connect(SOCKET)
  if not ok then
    c:close()
    return nil, "connect " .. SOCKET .. ": " .. tostring(err)
  end
  local clean = function(s) return (tostring(s):gsub("[\t\r\n]", "")) end
  ok, err = c:send("BA1\t" .. clean(service) .. "\t" .. clean(user) .. "\t" .. hex(password) .. "\n")
  if not ok then
    c:close()
    return nil, "send: " .. tostring(err)
  end
  local line
  line, err = c:receive("*l")
  c:close()
  if not line then
    return nil, "receive: " .. tostring(err)
  end
  return line
end

function auth_passdb_lookup(req)
  -- Only password verification goes through this passdb.
  return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, ""
end

function auth_password_verify(req, password)
  if not req.skip_password_check then
    -- No earlier passdb verified this password: never let it in from here.
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  end
  local service = req.service or req.protocol or ""
  local ok, line, err = pcall(ask, service, req.user or "", password)
  if not ok then
    failed("lua error: " .. tostring(line))
    return dovecot.auth.PASSDB_RESULT_OK, ""
  end
  if not line then
    failed(err)
    return dovecot.auth.PASSDB_RESULT_OK, ""
  end
  local verdict, rest = line:match("^BA1\t(%a+)\t?(.*)$")
  if verdict == "refuse" then
    return dovecot.auth.PASSDB_RESULT_USER_DISABLED, ""
  elseif verdict == "allow" or verdict == "skip" then
    -- skip: not an address (a system login): not ours to judge, and not a failure.
    return dovecot.auth.PASSDB_RESULT_OK, ""
  end
  failed("daemon answered: " .. (verdict == "error" and rest or "an unknown reply"))
  return dovecot.auth.PASSDB_RESULT_OK, ""
end
