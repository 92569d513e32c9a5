"""Peer gateways for the load harness, each doing the checks Portcullis's case (d)/(e) does,
configured from the same fixture, and a sanity pass proving that each accepts a valid token and
refuses a tampered one and a missing one before anything is timed.

HAProxy (Debian's 2.6): `jwt_verify` RS256 against the realm's public key (PEM written by the
fixture), `iss` equal, `aud` containing `orders-api` (a string, or one of the first two entries
of an array: HAProxy's JSON path has no "any element"), `exp` against the clock, a per-client
(`azp`) stick-table rate limit, and the identity headers X-User-Id / X-Client-Id. It has no
token cache: every request is verified, warm token or not.

oauth2-proxy 7.15.6 (built once from the Go module proxy with `go install`, cached in
~/.cache/portcullis/peers): bearer-token mode (`--skip-jwt-bearer-tokens`), go-oidc verifying the
RS256 signature, `iss`, `aud` (its client id, `orders-api`) and `exp`, then proxying with its
X-Forwarded-User headers; it has no rate limiter. GOMAXPROCS=1, as the other gateways run one
worker thread here.

Apache 2.4 + mod_auth_openidc 2.4.12 (Debian) as an OAuth 2.0 resource server: the RS256
signature against the realm's public key (`OIDCOAuthVerifyCertFiles`: the module takes a JWKS
URL over https only), `exp`/`iat` (built in), `iss` and `aud` by `Require claim`, identity
headers from the claims; validated tokens are cached in its shared-memory cache. One process
(`-X`) with 64 threads; no rate limiter.
"""
import base64, json, os, shutil, subprocess, urllib.error, urllib.request

HAPROXY_CHECKS = ("jwt_verify RS256 + iss + aud + exp + per-client stick-table limit + identity headers; "
                  "no token cache")

HAPROXY_CONF = """
global
  nbthread {threads}
  maxconn 4096
  pidfile {work}/{name}.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend api
  bind 127.0.0.1:{port}
  stick-table type string len 64 size 100k expire 10s store http_req_rate(1s)
  http-request set-var(txn.bearer) http_auth_bearer
  http-request deny status 401 unless {{ var(txn.bearer) -m found }}
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny status 401 unless {{ var(txn.alg) -m str RS256 }}
  http-request deny status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{work}/public.pem") -m int 1 }}
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
  http-request deny status 401 unless {{ var(txn.iss) -m str {issuer} }}
  http-request set-var(txn.aud0) var(txn.bearer),jwt_payload_query('$.aud[0]')
  http-request set-var(txn.aud1) var(txn.bearer),jwt_payload_query('$.aud[1]')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
  acl audience var(txn.aud0) -m str orders-api
  acl audience var(txn.aud1) -m str orders-api
  acl audience var(txn.aud) -m str orders-api
  http-request deny status 401 unless audience
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request deny status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request set-var(txn.azp) var(txn.bearer),jwt_payload_query('$.azp')
  http-request track-sc0 var(txn.azp)
  http-request deny status 429 if {{ sc_http_req_rate(0) gt 100000000 }}
  http-request set-header X-User-Id %[var(txn.bearer),jwt_payload_query('$.sub')]
  http-request set-header X-Client-Id %[var(txn.azp)]
  default_backend upstream
backend upstream
  http-reuse always
  server s1 {upstream}
"""


def start_haproxy(work, fixture, port, threads, children, name="haproxy"):
    """HAProxy with the checks above on `threads` threads, or None when it is not installed."""
    binary = "/usr/sbin/haproxy"
    if not os.path.exists(binary):
        return None
    path = os.path.join(work, f"{name}.cfg")
    with open(path, "w") as f:
        f.write(HAPROXY_CONF.format(work=work, port=port, threads=threads, issuer=fixture["issuer"],
                                    upstream=fixture["upstream"], name=name))
    subprocess.run([binary, "-c", "-q", "-f", path], check=True)
    proc = subprocess.Popen([binary, "-f", path, "-db"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, f"{name}.log"), "w"))
    children.append(proc)
    return proc


OAUTH2_PROXY_VERSION = "v7.15.6"
OAUTH2_PROXY_CHECKS = "go-oidc: RS256 signature + iss + aud + exp; no rate limiter; X-Forwarded-User headers"
PEER_BIN = os.path.expanduser("~/.cache/portcullis/peers")


def ensure_oauth2_proxy():
    """The oauth2-proxy binary, built with the Go toolchain when missing; None without Go."""
    binary = os.path.join(PEER_BIN, "oauth2-proxy")
    if os.path.exists(binary):
        return binary
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    if not go:
        print("oauth2-proxy: no Go toolchain, case (m) skipped", flush=True)
        return None
    os.makedirs(PEER_BIN, exist_ok=True)
    subprocess.run([go, "install", f"github.com/oauth2-proxy/oauth2-proxy/v7@{OAUTH2_PROXY_VERSION}"],
                   env={**os.environ, "GOBIN": PEER_BIN, "GOFLAGS": "-mod=mod"}, check=True)
    return binary


def start_oauth2_proxy(work, fixture, port, children):
    """oauth2-proxy in bearer-token mode in front of the fixture's upstream, or None."""
    binary = ensure_oauth2_proxy()
    if binary is None:
        return None
    proc = subprocess.Popen(
        [binary, f"--http-address=127.0.0.1:{port}", "--provider=oidc",
         f"--oidc-issuer-url={fixture['issuer']}", "--client-id=orders-api", "--client-secret=unused",
         "--cookie-secret=0123456789abcdef0123456789abcdef", "--email-domain=*",
         f"--upstream=http://{fixture['upstream']}/", "--skip-jwt-bearer-tokens=true",
         "--oidc-email-claim=sub", "--insecure-oidc-allow-unverified-email=true", "--api-route=^/",
         "--request-logging=false", "--auth-logging=false"],
        env={**os.environ, "GOMAXPROCS": "1"}, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "oauth2-proxy.log"), "w"))
    children.append(proc)
    return proc


APACHE_CHECKS = ("mod_auth_openidc: RS256 signature + exp + iss + aud, validated tokens cached; "
                 "no rate limiter; identity headers")
APACHE_MODULES = "/usr/lib/apache2/modules"
APACHE_CONF = """
ServerRoot {work}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so
Listen 127.0.0.1:{port}
ServerName localhost
PidFile {work}/httpd.pid
ErrorLog {work}/apache-error.log
LogLevel crit
ThreadsPerChild 64
ServerLimit 1
StartServers 1
MaxRequestWorkers 64
KeepAliveTimeout 30
MaxKeepAliveRequests 0
OIDCOAuthVerifyCertFiles {kid}#{work}/public.pem
OIDCOAuthRemoteUserClaim sub
OIDCCacheType shm
<Location />
  AuthType oauth20
  <RequireAll>
    Require claim iss:{issuer}
    Require claim aud:orders-api
  </RequireAll>
  RequestHeader set X-User-Id "%{{OIDC_CLAIM_sub}}e"
  RequestHeader set X-Client-Id "%{{OIDC_CLAIM_azp}}e"
  ProxyPass http://{upstream}/
</Location>
"""


def start_apache(work, fixture, port, token, children):
    """Apache + mod_auth_openidc as above, or None when they are not installed."""
    binary = "/usr/sbin/apache2"
    if not (os.path.exists(binary) and os.path.exists(f"{APACHE_MODULES}/mod_auth_openidc.so")):
        return None
    header = token.split(".")[0]
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    path = os.path.join(work, "httpd.conf")
    with open(path, "w") as f:
        f.write(APACHE_CONF.format(work=work, modules=APACHE_MODULES, port=port, kid=kid,
                                   issuer=fixture["issuer"], upstream=fixture["upstream"]))
    subprocess.run([binary, "-t", "-f", path], check=True, capture_output=True)
    proc = subprocess.Popen([binary, "-X", "-f", path], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "apache.log"), "w"))
    children.append(proc)
    return proc


def status(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def tampered(token):
    head, payload, signature = token.split(".")
    flipped = ("B" if signature[5] == "A" else "A")
    return f"{head}.{payload}.{signature[:5]}{flipped}{signature[6:]}"


def sanity(name, url, token):
    """Valid token 200, tampered signature 401 or 403, no token 401 — or the run stops."""
    got = (status(url, token), status(url, tampered(token)), status(url, None))
    if got[0] != 200 or got[1] not in (401, 403) or got[2] not in (401, 403):
        raise SystemExit(f"sanity pass failed for {name} at {url}: valid/tampered/none -> {got}")
    print(f"sanity {name}: valid 200, tampered {got[1]}, none {got[2]}", flush=True)
