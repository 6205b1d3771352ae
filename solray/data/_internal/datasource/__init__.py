"""Built-in datasources and datasinks."""
