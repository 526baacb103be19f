/*
 * route_test — `amqp-sidecar test -c FILE [TESTS…]`: runs the cases of JSON
 * tests files through the config's routes, with the broker and the legacy
 * side played in-process (route_test_world.c), the way `benthos test` does.
 * No broker, no legacy system, no listening socket.
 */
#ifndef SIDECAR_ROUTE_TEST_H
#define SIDECAR_ROUTE_TEST_H

#include <stdbool.h>
#include <stddef.h>

struct sidecar_config;

/* `amqp-sidecar test --help`: the format, with a small example. */
extern const char route_test_usage[];

/* Runs every case of files (n of them; none: FILE's sibling "<name>.tests.json").
 * Prints one line per case (and the differences of a failed one) and
 * "N passed, N failed". 0 all passed, 1 a case failed, 2 a tests file is bad
 * (nothing ran). verbose keeps the routes' log lines (else only errors). */
int route_test_main(struct sidecar_config *cfg, const char *const *files, size_t n_files,
                    bool verbose);

#endif
