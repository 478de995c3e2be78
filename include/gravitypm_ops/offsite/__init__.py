"""Off-site copies of committed backups into a second vault, and their retention."""
