"""A corpus of broken and hostile input files, generated at test time (see :mod:`.corpus`)."""
