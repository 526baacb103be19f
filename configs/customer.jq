# customer.jq — the CRM wants a customer record, not an order event.
{ customer_id: .customer, email: .email, last_order: .order_id, total: .total }
