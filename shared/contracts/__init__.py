"""The platform's message contracts (pydantic v2), exported to docs/contracts/ as JSON Schema."""
