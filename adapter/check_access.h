/*
 * check_access — `check --user NAME`: can that user do, on every path of the
 * config (config_paths.h), what the sidecar will do there? A child process
 * becomes the user (initgroups, setgid, setuid) and asks access(2) about
 * each path and each of its parents, so the kernel answers with the user's
 * real groups, ACLs and mount flags; the parent (root) explains each refusal
 * with the owner and mode it sees and the fix (chown/chmod).
 */
#ifndef SIDECAR_CHECK_ACCESS_H
#define SIDECAR_CHECK_ACCESS_H

struct sidecar_config;

/* Prints each problem as `file:line: key: what; fix: …` on stderr and a
 * summary on stdout. Returns 0 (all reachable), 1 (problems) or 2 (no such
 * user; or not root and NAME is not the caller). */
int check_access_as(const struct sidecar_config *cfg, const char *user);

#endif
