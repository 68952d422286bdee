"""Reading the user's files into examples, the schema, text-aware validation and the gate that stops a run on bad data."""
