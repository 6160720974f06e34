"""What every service shares: settings, broker and store construction, DLQ, outbox, HTTP."""
