"""Framework-neutral pieces both trainers share: the config, the command line, run folders and checkpoints."""
