from repairtool.cli import entry

entry()
