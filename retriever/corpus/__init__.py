"""Reading what users hand in: corpora in every format, queries and qrels, with errors that name the
file, line and field."""
