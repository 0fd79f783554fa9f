"""Messages: the content of threads, written by users or by runs."""
