"""PACS client: node settings, C-ECHO, C-FIND, C-GET/C-MOVE retrieve into the store, C-STORE of results."""
