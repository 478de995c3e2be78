"""The mongodump archive format (what `mongorestore --archive` reads): writer, reader, CRC-64."""
