/*
 * broker_url — see broker_url.h. Grammar accepted:
 *   amqp[s]://[user[:password]@]host[:port][/vhost]
 * where host may be a bracketed IPv6 literal.
 */
#include "broker_url.h"

#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes %XX escapes of s[0..n) into a new string; NULL on a bad escape. */
static char *percent_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 1 < n ? hex_value(s[i + 1]) : -1;
        int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

void broker_url_free(struct broker_url *u)
{
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->vhost);
    *u = (struct broker_url){0};
}

static int fail(char *err, size_t errlen, const char *text, const char *what)
{
    snprintf(err, errlen, "broker URL \"%s\": %s", text, what);
    return -1;
}

int broker_url_parse(const char *text, struct broker_url *out, char *err, size_t errlen)
{
    *out = (struct broker_url){0};
    const char *p;
    if (strncmp(text, "amqp://", 7) == 0) {
        p = text + 7;
    } else if (strncmp(text, "amqps://", 8) == 0) {
        out->tls = true;
        p = text + 8;
    } else {
        return fail(err, errlen, text, "must start with amqp:// or amqps://");
    }
    if (strchr(p, '?') != NULL || strchr(p, '#') != NULL)
        return fail(err, errlen, text,
                    "query parameters are not supported; use the broker keys "
                    "(heartbeat, tls) instead");

    const char *slash = strchr(p, '/');
    const char *auth_end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;

    const char *hostport = p;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at;
        out->user = percent_decode(p, (size_t)(user_end - p));
        out->password = colon ? percent_decode(colon + 1, (size_t)(at - colon - 1)) : NULL;
        if (out->user == NULL || (colon && out->password == NULL)) {
            broker_url_free(out);
            return fail(err, errlen, text, "bad %-escape in user or password");
        }
        hostport = at + 1;
    }
    if (out->user == NULL || out->user[0] == '\0') {
        free(out->user);
        out->user = xstrdup("guest");
    }
    if (out->password == NULL)
        out->password = xstrdup("guest");

    const char *host_end;
    const char *port_start = NULL;
    if (*hostport == '[') {
        const char *close = memchr(hostport, ']', (size_t)(auth_end - hostport));
        if (close == NULL) {
            broker_url_free(out);
            return fail(err, errlen, text, "unterminated [IPv6] host");
        }
        out->host = xstrndup(hostport + 1, (size_t)(close - hostport - 1));
        host_end = close + 1;
        if (host_end < auth_end) {
            if (*host_end != ':') {
                broker_url_free(out);
                return fail(err, errlen, text, "expected ':' after ]");
            }
            port_start = host_end + 1;
        }
    } else {
        const char *colon = memchr(hostport, ':', (size_t)(auth_end - hostport));
        host_end = colon ? colon : auth_end;
        out->host = xstrndup(hostport, (size_t)(host_end - hostport));
        if (colon)
            port_start = colon + 1;
    }
    if (out->host[0] == '\0') {
        broker_url_free(out);
        return fail(err, errlen, text, "missing host");
    }

    out->port = out->tls ? 5671 : 5672;
    if (port_start != NULL) {
        char *end;
        long port = strtol(port_start, &end, 10);
        if (end == port_start || end != auth_end || port < 1 || port > 65535) {
            broker_url_free(out);
            return fail(err, errlen, text, "port must be a number from 1 to 65535");
        }
        out->port = (int)port;
    }

    if (slash == NULL || slash[1] == '\0') {
        out->vhost = xstrdup("/");
    } else {
        if (strchr(slash + 1, '/') != NULL) {
            broker_url_free(out);
            return fail(err, errlen, text,
                        "vhost must be one path segment; write \"/\" inside it as %2f");
        }
        out->vhost = percent_decode(slash + 1, strlen(slash + 1));
        if (out->vhost == NULL) {
            broker_url_free(out);
            return fail(err, errlen, text, "bad %-escape in vhost");
        }
    }
    return 0;
}

char *broker_url_display(const struct broker_url *u)
{
    bool v6 = strchr(u->host, ':') != NULL;
    return xasprintf("%s://%s@%s%s%s:%d/%s", u->tls ? "amqps" : "amqp", u->user, v6 ? "[" : "",
                     u->host, v6 ? "]" : "", u->port,
                     strcmp(u->vhost, "/") == 0 ? "%2f" : u->vhost);
}
