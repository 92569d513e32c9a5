"""Peer gateways for the load harness, each doing the checks Portcullis's case (d)/(e) does,
configured from the same fixture, and a sanity pass proving that each accepts a valid token and
refuses a tampered one and a missing one before anything is timed.

HAProxy (Debian's 2.6): `jwt_verify` RS256 against the realm's public key (PEM written by the
fixture), `iss` equal, `aud` containing `orders-api` (a string, or one of the first two entries
of an array: HAProxy's JSON path has no "any element"), `exp` against the clock, a per-client
(`azp`) stick-table rate limit, and the identity headers X-User-Id / X-Client-Id. It has no
token cache: every request is verified, warm token or not.
"""
import os, subprocess, urllib.error, urllib.request

HAPROXY_CHECKS = ("jwt_verify RS256 + iss + aud + exp + per-client stick-table limit + identity headers; "
                  "no token cache")

HAPROXY_CONF = """
global
  nbthread {threads}
  maxconn 4096
  pidfile {work}/haproxy.pid
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


def start_haproxy(work, fixture, port, threads, children):
    """HAProxy with the checks above, or None when it is not installed."""
    binary = "/usr/sbin/haproxy"
    if not os.path.exists(binary):
        return None
    path = os.path.join(work, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(HAPROXY_CONF.format(work=work, port=port, threads=threads, issuer=fixture["issuer"],
                                    upstream=fixture["upstream"]))
    subprocess.run([binary, "-c", "-q", "-f", path], check=True)
    proc = subprocess.Popen([binary, "-f", path, "-db"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "haproxy.log"), "w"))
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
