"""End-to-end: a route's dead-letter queue deleted while the sidecar runs.

An unroutable message is parked in the route's DLQ; with that DLQ gone its
parked copy is returned as well, and the message would exist nowhere. It
must then count as not published: an HTTP sender gets 503 (test_http_in.py),
a file stays to be retried, a poll cursor does not move past the item. A
restart redeclares the DLQ and the work completes: nothing is lost.
"""
import json

from conftest import plain, wait_for
from file_helpers import FileIn, Route, listing, settle
from http_poll_helpers import legacy_server
from test_poll_in import TicketApi, cursor_of, start, ticket_route


def test_file_with_an_unroutable_record_waits_for_its_dlq(broker, sidecar, uid, tmp_path):
    r = Route(str(tmp_path), uid, "rows", "csv", routing_key="file.rows.{json.kind}",
              bind="file.rows.invoice")
    t = FileIn(broker, sidecar, uid, [r])
    broker.ctl("delete_queue", r.dlq)
    content = b"id,kind\n1,invoice\n2,credit\n"
    r.drop("mixed.csv", content)
    wait_for(lambda: "did not take the unroutable message" in t.sidecar.log() or
             "mixed.csv" in listing(r.done), 20, what="the park refused (or the file filed)")
    settle(2)
    assert "mixed.csv" not in listing(r.done), "filed although a record is stored nowhere"
    assert "mixed.csv" in listing(r.dir) + listing(r.processing)
    t.sidecar.stop()

    s = t.start()  # redeclares the DLQ; the file is retried and completes
    r.wait_done("mixed.csv")
    [(dp, db)] = t.dead(r)
    assert json.loads(db)["kind"] == "credit"
    assert "unroutable" in dp.headers["x-sidecar-error"]
    kinds = [json.loads(b)["kind"] for _, b in t.messages(r)]
    assert "invoice" in kinds and set(kinds) == {"invoice"}  # once or twice: same message_id
    s.stop()


def test_poll_cursor_stays_before_an_item_stored_nowhere(broker, sidecar, uid, tmp_path):
    exchange, queue, state = f"{uid}.events", f"{uid}.tickets-in", tmp_path / "state"
    broker.declare_exchange(exchange)
    broker.declare_queue(queue, exchange, "ticket.open")
    with legacy_server() as server:
        api = TicketApi(server)
        route = ticket_route(server.url("/tickets"), exchange).replace(
            'routing_key = "ticket.changed"', 'routing_key = "ticket.{json.kind}"')
        s = start(sidecar, uid, state, route)
        broker.ctl("delete_queue", f"{uid}.tickets.dlq")
        api.add("P-1", "1", kind="open")
        api.add("P-2", "2", kind="weird")  # no binding: parked, but the DLQ is gone
        wait_for(lambda: "did not take the unroutable message" in s.log() or
                 cursor_of(state) == "2", 20, what="the park refused (or the cursor moved)")
        settle(1.5)
        assert cursor_of(state) in (None, "1"), "the cursor moved past an item stored nowhere"
        assert "last poll failed" in plain(s.readyz().text)
        s.stop()

        s = start(sidecar, uid, state, route)  # the DLQ is back: the item is parked
        wait_for(lambda: cursor_of(state) == "2", 15, what="cursor past P-2 after the restart")
        [(dp, db)] = broker.get_all(f"{uid}.tickets.dlq")
        assert json.loads(db)["id"] == "P-2"
        assert "P-1" in [p.message_id for p, _ in broker.get_all(queue)]
        s.stop()
