# orders.jq — reshape a legacy order into the event the rest of the company reads.
# A transform must produce exactly one JSON value; error("…") answers 422 with that text.
if (.id | type) != "string" and (.id | type) != "number" then error("order has no id") else . end
| {
    type: (.status // "created"),
    order_id: (.id | tostring),
    customer: .customer,
    email: .email,
    total: ([.lines[]? | (.qty * .price)] | add // 0),
    lines: [.lines[]? | {sku, qty}]
  }
