vcl 4.1;
# Tessera behind Varnish 7 (tested with 7.1 and varnish-modules 0.20 from Debian bookworm).
#
# Edit this file: where the gateway runs, how it is probed, who may purge.
# The caching logic lives in tessera.vcl, next to this file; keep it unchanged
# so that upgrades replace it. See docs/edge.md.
#
#   varnishd -a :6081 -f /etc/varnish/default.vcl -s malloc,1G
#
# (keep both files in one folder: "./tessera.vcl" is relative to this file).

# The gateway (the first backend declared is the default). For several
# replicas, declare one backend each and a director (docs/edge.md).
backend tessera {
    .host = "127.0.0.1";
    .port = "8000";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
    # While the probe fails, cached pages are served stale for up to their
    # stale-if-error instead of their stale-while-revalidate.
    .probe = {
        .url = "/healthz";
        .interval = 2s;
        .timeout = 1s;
        .window = 5;
        .threshold = 3;
        .initial = 3;
    }
}

# Who may send `PURGE` with an `xkey-purge` header: the gateway replicas
# (their publish webhooks purge by surrogate key). Loopback only by default;
# add the gateway hosts' addresses or networks, e.g. "10.0.0.0"/8;
# client.ip is the peer's address (or the PROXY protocol's client).
acl tessera_purgers {
    "127.0.0.1";
    "::1";
}

# CORS: the browser origins that CORS_ORIGINS allows, as one regular
# expression. A cached page is kept once per allowed Origin (the gateway's
# Access-Control-Allow-Origin names it); other Origin headers are dropped, so
# those requests share the same-origin copy, which carries no Access-Control-*
# headers, exactly what the gateway would answer them. With CORS_ORIGINS=*,
# replace the body with: if (req.http.Origin) { set req.http.Origin = "*"; }
sub tessera_cors_origin {
    if (req.http.Origin !~ "^https?://(localhost|127\.0\.0\.1)(:[0-9]+)?$") {
        unset req.http.Origin;
    }
}

include "./tessera.vcl";
