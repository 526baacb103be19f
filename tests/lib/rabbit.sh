# Shell helpers to run a private RabbitMQ node without systemd (sourced by
# tests/demo.sh and tests/bench/run.sh; the pytest suites have their own in
# tests/e2e/conftest.py).
#
#   rabbit_start DIR [PLUGINS]   start a node with data in DIR on free loopback ports;
#                                sets RABBIT_PORT, RABBIT_MGMT_PORT, RABBIT_NODE, RABBIT_URL
#   rabbitctl ARGS…              rabbitmqctl against that node
#   rabbit_stop                  stop it (by node name) and wait for it to go away

RABBIT_BIN=/usr/lib/rabbitmq/bin

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rabbit_env() {
    export RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT=$RABBIT_PORT RABBITMQ_DIST_PORT=$RABBIT_DIST_PORT \
        RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia RABBITMQ_LOG_BASE=$RABBIT_DIR/log \
        RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins \
        RABBITMQ_CONFIG_FILE=$RABBIT_DIR/rabbitmq HOME=$RABBIT_DIR
}

rabbit_start() {
    RABBIT_DIR=$(realpath -m "$1")
    local plugins=${2:-}
    mkdir -p "$RABBIT_DIR"
    RABBIT_PORT=$(free_port)
    RABBIT_DIST_PORT=$(free_port)
    RABBIT_MGMT_PORT=$(free_port)
    RABBIT_NODE="sidecar$$@localhost"
    RABBIT_URL="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
    (
        rabbit_env
        echo "[${plugins}]." >"$RABBIT_DIR/enabled_plugins"
        {
            echo "listeners.tcp.default = 127.0.0.1:$RABBIT_PORT"
            [ -n "$plugins" ] && echo "management.tcp.port = $RABBIT_MGMT_PORT" && echo "management.tcp.ip = 127.0.0.1"
        } >"$RABBIT_DIR/rabbitmq.conf"
        # from its own directory: a node that stops badly writes its MnesiaCore dump there
        (cd "$RABBIT_DIR" && setsid "$RABBIT_BIN/rabbitmq-server" >"$RABBIT_DIR/out" 2>&1) &
        for _ in $(seq 1 120); do
            "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" -q status >/dev/null 2>&1 && exit 0
            sleep 0.5
        done
        echo "RabbitMQ did not start; see $RABBIT_DIR/out" >&2
        exit 1
    )
}

rabbitctl() {
    (rabbit_env && "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" -q "$@")
}

rabbit_stop() {
    [ -n "${RABBIT_NODE:-}" ] || return 0
    rabbitctl stop >/dev/null 2>&1 || true
    RABBIT_NODE=
}
