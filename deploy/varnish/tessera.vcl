vcl 4.1;
# Tessera's caching logic for Varnish 7 + varnish-modules (xkey, header).
# Included by default.vcl, which declares the backend(s), the `tessera_purgers`
# ACL and `tessera_cors_origin`.
#
# The gateway labels every /graphql response `X-Tessera-Cache-Scope`:
#   public    same for everyone: cached by URL (cookies play no part in the key)
#   audience  same for everyone holding one edge key: cached per `tsr_ek` cookie
#   private   never stored; nor is anything with Set-Cookie, no-store or private.
# Everything else (POST, /v1/events, /webhooks, /metrics, /healthz) passes.
# docs/edge.md explains the design; tests/edge/ tests it against a real varnishd.

import std;
import cookie;
import xkey;
import header;

sub vcl_recv {
    if (req.restarts == 0) {
        # Internal markers and the edge key come from this VCL, never from a client.
        unset req.http.X-Tessera-Grace;
        unset req.http.X-Tessera-Purged;
        unset req.http.X-Tessera-Edge-Key;
    }
    if (req.method == "PURGE") {
        call tessera_purge;
    }
    call vcl_req_host;
    if (req.url !~ "^/graphql(\?|$)") {
        return (pass);
    }
    # POST (mutations, and queries sent by POST) and every other method pass.
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    if (req.restarts == 0) {
        call tessera_edge_key;
        call tessera_cors_origin;
    }
    # One spelling per URL: APQ clients may order the parameters differently.
    set req.url = std.querysort(req.url);
    # The gateway answers differently only for these Accept classes.
    if (req.http.Accept ~ "application/graphql-response\+json") {
        set req.http.Accept = "application/graphql-response+json, application/json;q=0.9";
    } elsif (req.http.Accept ~ "text/html") {
        set req.http.Accept = "text/html, application/json;q=0.9";
    } else {
        set req.http.Accept = "application/json";
    }
    if (req.http.X-Tessera-Grace == "none") {
        # Restarted from vcl_hit: the copy is past stale-while-revalidate; fetch
        # now. Only rarely asked pages get here (a page asked often is refreshed
        # in the background within its stale-while-revalidate), so rather than
        # queue behind another such fetch, which may be waiting on a hung
        # origin, each fetches on its own.
        set req.grace = 0s;
        set req.hash_ignore_busy = true;
    } elsif (req.http.X-Tessera-Grace == "error") {
        # Restarted because that fetch failed: any copy within its stale-if-error
        # (req.grace outlives a restart and cannot be unset, only raised again).
        set req.grace = 3650d;
    }
    # Cookies and Authorization do not stop the lookup (the builtin VCL would
    # pass): the gateway says per response what may be shared.
    return (hash);
}

# PURGE with `xkey-purge: page:home block:hero …` from the gateway: removes
# every object tagged with any of the keys; answers how many.
sub tessera_purge {
    if (client.ip !~ tessera_purgers) {
        return (synth(403, "Forbidden"));
    }
    if (!req.http.xkey-purge) {
        return (synth(400, "xkey-purge header required"));
    }
    set req.http.X-Tessera-Purged = xkey.purge(req.http.xkey-purge);
    return (synth(200, "Purged"));
}

# The edge key: the value of the `tsr_ek` cookie, as X-Tessera-Edge-Key, so that
# audience objects (Vary: X-Tessera-Edge-Key) are found without asking the origin.
sub tessera_edge_key {
    if (!req.http.Cookie) {
        return;
    }
    # Several Cookie headers are one list; the origin must see the same tsr_ek as we do.
    std.collect(req.http.Cookie, "; ");
    cookie.parse(req.http.Cookie);
    if (cookie.isset("tsr_ek")) {
        set req.http.X-Tessera-Edge-Key = cookie.get("tsr_ek");
        # Send exactly one tsr_ek on to the origin: the one the cache is keyed on.
        cookie.delete("tsr_ek");
        cookie.set("tsr_ek", req.http.X-Tessera-Edge-Key);
        set req.http.Cookie = cookie.get_string();
        if (req.http.X-Tessera-Edge-Key !~ "^[A-Za-z0-9._~+/=-]{1,128}$") {
            # Not a key the gateway could have set: look up as a visitor without one.
            unset req.http.X-Tessera-Edge-Key;
        }
    }
}

sub vcl_hash {
    # Beside the URL and Host (the builtin vcl_hash): the negotiated media
    # type and the CORS origin, both reduced to a few values in vcl_recv.
    hash_data(req.http.Accept);
    if (req.http.Origin) {
        hash_data(req.http.Origin);
    }
}

sub vcl_hit {
    if (obj.ttl < 0s && req.http.X-Tessera-Grace != "error" &&
        obj.ttl + std.duration(obj.http.X-Tessera-SWR, 0s) < 0s &&
        std.healthy(req.backend_hint)) {
        # Past stale-while-revalidate and the origin is up: fetch in the foreground
        # (vcl_synth comes back to this copy if that fetch fails).
        set req.http.X-Tessera-Grace = "none";
        return (restart);
    }
}

sub vcl_backend_fetch {
    if (bereq.http.X-Tessera-Grace != "none") {
        unset bereq.http.X-Tessera-Grace;
    }
    # Kept (and ignored by the gateway) while a stale copy waits for this
    # fetch: vcl_backend_response and vcl_backend_error read it back.
}

sub vcl_backend_response {
    if (bereq.uncacheable) {
        # A pass: nothing is stored.
        return (deliver);
    }
    if (beresp.status >= 500 &&
        (bereq.is_bgfetch || bereq.http.X-Tessera-Grace == "none")) {
        # A stale copy exists: keep it (even a hit-for-miss marker would
        # supersede it); the client is answered from it (vcl_synth).
        return (abandon);
    }
    if (!beresp.http.xkey && beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    if (beresp.status != 200 ||
        beresp.http.X-Tessera-Cache-Scope !~ "^(public|audience)$" ||
        beresp.http.Set-Cookie ||
        beresp.http.Cache-Control ~ "(?i)(private|no-store|no-cache)" ||
        beresp.http.Surrogate-Control ~ "(?i)no-store" ||
        beresp.http.Vary == "*" ||
        beresp.ttl <= 0s) {
        call tessera_not_stored;
    }
    if (beresp.http.X-Tessera-Cache-Scope == "audience" &&
        (!bereq.http.X-Tessera-Edge-Key ||
         beresp.http.X-Tessera-Edge-Key != bereq.http.X-Tessera-Edge-Key)) {
        # Stored under the request's edge key, so it must be the key the origin used.
        call tessera_not_stored;
    }
    # Public and audience answers do not depend on the visitor beyond the edge key.
    set beresp.http.Vary = regsuball(beresp.http.Vary, "(?i)\b(cookie|x-visitor-id)\b", "");
    set beresp.http.Vary = regsuball(beresp.http.Vary, "^[\s,]+|[\s,]+$", "");
    set beresp.http.Vary = regsuball(beresp.http.Vary, "\s*,[\s,]*", ", ");
    if (beresp.http.X-Tessera-Cache-Scope == "audience" &&
        beresp.http.Vary !~ "(?i)\bx-tessera-edge-key\b") {
        if (beresp.http.Vary) {
            set beresp.http.Vary = beresp.http.Vary + ", X-Tessera-Edge-Key";
        } else {
            set beresp.http.Vary = "X-Tessera-Edge-Key";
        }
    }
    if (beresp.http.Vary == "") {
        unset beresp.http.Vary;
    }
    # beresp.ttl already comes from s-maxage. Grace is stale-if-error: vcl_hit
    # cuts it down to stale-while-revalidate while the origin is healthy. The
    # gateway says both in Surrogate-Control (browsers must not serve stale
    # pages); Cache-Control is read when an origin puts them there.
    set beresp.http.X-Tessera-Staleness = beresp.http.Cache-Control;
    if (beresp.http.Surrogate-Control) {
        set beresp.http.X-Tessera-Staleness = beresp.http.Surrogate-Control;
    }
    set beresp.http.X-Tessera-SWR = "0s";
    if (beresp.http.X-Tessera-Staleness ~ "stale-while-revalidate=[0-9]+") {
        set beresp.http.X-Tessera-SWR = regsub(beresp.http.X-Tessera-Staleness,
            "^.*stale-while-revalidate=([0-9]+).*$", "\1s");
    }
    set beresp.grace = std.duration(beresp.http.X-Tessera-SWR, 0s);
    if (beresp.http.X-Tessera-Staleness ~ "stale-if-error=[0-9]+") {
        set beresp.grace = std.duration(regsub(beresp.http.X-Tessera-Staleness,
            "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s);
    }
    unset beresp.http.X-Tessera-Staleness;
    # Past grace the copy is still revalidated with If-None-Match (a 304 refreshes it).
    set beresp.keep = 1h;
    return (deliver);
}

# A response that must not be stored. It is delivered to its own client only.
# Usually Varnish also remembers, for a few seconds, "this URL goes to the
# origin" (hit-for-miss), so that requests for it are not queued behind one
# another. That marker never answers anyone: a request that finds it is
# fetched on its own, and a cacheable answer fetched that way is stored
# normally. It varies on the edge key, so one visitor's private answer only
# sends requests with the same key (or, for a visitor without one, other
# visitors without one) to the origin, never visitors with other keys.
sub tessera_not_stored {
    if (bereq.http.X-Tessera-Edge-Key &&
        ((beresp.status >= 400 && beresp.status < 500) ||
         header.get(beresp.http.Set-Cookie, "^\s*tsr_ek=") ~ "tsr_ek=")) {
        # The origin refused this request's edge key, or this client (4xx, e.g.
        # 429): no marker, so that forged keys cannot pile up one each on a page.
        call tessera_uncacheable;
    }
    set beresp.ttl = 10s;
    set beresp.grace = 0s;
    set beresp.keep = 0s;
    set beresp.uncacheable = true;
    set beresp.http.Vary = "X-Tessera-Edge-Key";
    return (deliver);
}

sub tessera_uncacheable {
    set beresp.ttl = 0s;
    set beresp.grace = 0s;
    set beresp.keep = 0s;
    set beresp.uncacheable = true;
    return (deliver);
}

sub vcl_backend_error {
    if (bereq.is_bgfetch || bereq.http.X-Tessera-Grace == "none") {
        # The origin is unreachable and a stale copy exists: keep it.
        return (abandon);
    }
}

sub vcl_deliver {
    unset resp.http.Surrogate-Key;
    unset resp.http.xkey;
    unset resp.http.X-Tessera-SWR;
    unset resp.http.Surrogate-Control;
    unset resp.http.CDN-Cache-Control;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}

sub vcl_synth {
    if (resp.status == 503 && req.http.X-Tessera-Grace == "none") {
        # The fetch past stale-while-revalidate failed: answer from the stale
        # copy instead, for up to its stale-if-error.
        set req.http.X-Tessera-Grace = "error";
        return (restart);
    }
    if (req.method == "PURGE") {
        set resp.http.Content-Type = "application/json";
        if (resp.status == 200) {
            set resp.http.X-Purged = req.http.X-Tessera-Purged;
            set resp.body = {"{"purged": "} + req.http.X-Tessera-Purged + "}";
        } else {
            set resp.body = {"{"error": ""} + resp.reason + {"""} + "}";
        }
        return (deliver);
    }
}
