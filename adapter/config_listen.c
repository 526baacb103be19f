/*
 * config_listen — the "host:port" form of every listen address (admin, http and
 * soap inbound; the host may be "[v6]"). The key engine checks KEY_LISTEN values
 * with it at load time and httpd splits the same string with it when it binds,
 * so what `check` accepts is exactly what the listener opens.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

int config_parse_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *host_start = listen;
    size_t host_len;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        host_start = listen + 1;
        host_len = (size_t)(close - listen - 1);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (colon == NULL || memchr(listen, ':', (size_t)(colon - listen)) != NULL)
            return -1;
        host_len = (size_t)(colon - listen);
    }
    if (host_len == 0 || host_len >= hostlen)
        return -1;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}
