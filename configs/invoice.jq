# invoice.jq — one CSV record (every value a string) into the event other systems expect.
# Amounts stay strings: jq 1.6 numbers are doubles and must not lose digits.
{
  type: (if (.amount | startswith("-")) then "credit" else "invoice" end),
  invoice: .invoice,
  customer: .customer,
  amount: .amount,
  currency: (.currency // "EUR")
}
